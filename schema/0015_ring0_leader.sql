-- Which ring 0 member holds the singleton work (liveness decisions, placement, promotion) and
-- its fencing epoch. A member that wins the leader's advisory lock bumps the epoch; every
-- write of singleton work checks it in its own transaction (holding this row shared), so a
-- deposed leader's late write is refused rather than committed.
CREATE TABLE ring0_leader (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch  bigint NOT NULL,
    member text NOT NULL,
    since  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ring0_leader (epoch, member) VALUES (0, '');
