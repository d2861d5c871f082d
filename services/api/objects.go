package api

import (
	"errors"
	"fmt"
	"net/http"

	"enjin/services/inventory"
)

// Compartments, tiers and their members, and the history of every versioned object.

type compartmentList struct {
	Compartments []inventory.Compartment `json:"compartments"`
}

func (a *API) listCompartments(c *call) error {
	cs, err := a.store.ListCompartments(c.ctx, c.q.meta)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, compartmentList{Compartments: nonNil(cs)})
	return nil
}

func (a *API) createCompartment(c *call) error {
	b := c.in.(*compartmentCreate)
	cm, err := a.store.CreateCompartment(c.ctx, inventory.Compartment{Ring: *b.Ring, Type: b.Type, Label: b.Label,
		Parents: b.Parents, Metadata: b.Metadata})
	if err != nil {
		return err
	}
	a.created(c, "/v1/compartments/"+cm.ID, cm.Version, cm)
	return nil
}

func (a *API) getCompartment(c *call) error {
	cm, err := a.store.GetCompartment(c.ctx, c.path["compartment"])
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, cm.Version, cm)
	return nil
}

func (a *API) patchCompartment(c *call) error {
	b := c.in.(*compartmentPatch)
	cm, err := a.store.UpdateCompartment(c.ctx, c.path["compartment"], c.version, inventory.CompartmentPatch{
		Type: b.Type, Label: b.Label, Parents: b.Parents, Metadata: b.Metadata})
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, cm.Version, cm)
	return nil
}

func (a *API) deleteCompartment(c *call) error {
	if err := a.store.DeleteCompartment(c.ctx, c.path["compartment"], c.version); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

type tierList struct {
	Tiers []inventory.Tier `json:"tiers"`
}

func (a *API) listTiers(c *call) error {
	ts, err := a.store.ListTiers(c.ctx, c.q.meta)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, tierList{Tiers: nonNil(ts)})
	return nil
}

func (a *API) createTier(c *call) error {
	b := c.in.(*tierCreate)
	t, err := a.store.CreateTier(c.ctx, inventory.Tier{Ring: *b.Ring, Label: b.Label, Replicas: *b.Replicas,
		Metadata: b.Metadata})
	if err != nil {
		return err
	}
	a.created(c, "/v1/tiers/"+t.ID, t.Version, t)
	return nil
}

func (a *API) getTier(c *call) error {
	t, err := a.store.GetTier(c.ctx, c.path["tier"])
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, t.Version, t)
	return nil
}

func (a *API) patchTier(c *call) error {
	b := c.in.(*tierPatch)
	t, err := a.store.UpdateTier(c.ctx, c.path["tier"], c.version, inventory.TierPatch{
		Label: b.Label, Replicas: b.Replicas, Metadata: b.Metadata})
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, t.Version, t)
	return nil
}

func (a *API) deleteTier(c *call) error {
	if err := a.store.DeleteTier(c.ctx, c.path["tier"], c.version); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// tierUnchanged checks that the tier exists and, if the caller sent If-Match, that it is still
// at that version. Membership writes are serialized by the store on the tier's row but not
// conditioned on its version, so this check is advisory: it catches a caller working from
// an old read, not a writer racing it.
func (a *API) tierUnchanged(c *call) error {
	t, err := a.store.GetTier(c.ctx, c.path["tier"])
	if err != nil {
		return err
	}
	if c.hasVersion && t.Version != c.version {
		return fmt.Errorf("tier %s is at version %d, not %d: %w", t.ID, t.Version, c.version, inventory.ErrConflict)
	}
	return nil
}

func (a *API) putMember(c *call) error {
	if err := a.tierUnchanged(c); err != nil {
		return err
	}
	if _, err := a.store.GetNode(c.ctx, c.node()); err != nil {
		return err
	}
	role := c.in.(*memberPut).Role
	t, err := a.store.SetMember(c.ctx, c.path["tier"], c.node(), role)
	if errors.Is(err, inventory.ErrExists) && role == "primary" {
		return &apiError{http.StatusConflict, "exists", "the tier already has a primary: promote, or make it a replica first"}
	}
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, t.Version, t)
	return nil
}

func (a *API) deleteMember(c *call) error {
	if err := a.tierUnchanged(c); err != nil {
		return err
	}
	t, err := a.store.RemoveMember(c.ctx, c.path["tier"], c.node())
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, t.Version, t)
	return nil
}

func (a *API) promote(c *call) error {
	if err := a.tierUnchanged(c); err != nil {
		return err
	}
	p, err := a.store.Promote(c.ctx, c.path["tier"], c.in.(*promoteBody).Failed)
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, p.Tier.Version, p)
	return nil
}

type historyList struct {
	History []map[string]any `json:"history"` // {version, deleted, changed_at, data}, oldest first
}

func (a *API) history(c *call) error {
	kind, id := c.path["kind"], c.path["id"]
	if _, ok := checkUUID(id); kind != "node" && !ok {
		return badRequest("bad_id", "%s id %q: want a UUID", kind, trunc(id, 80))
	}
	h, err := a.store.History(c.ctx, kind, id)
	if err != nil {
		return err
	}
	if len(h) == 0 {
		return notFound("no history of %s %s", kind, id)
	}
	a.reply(c.w, http.StatusOK, historyList{History: h})
	return nil
}
