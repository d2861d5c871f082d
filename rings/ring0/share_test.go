package ring0

import (
	"fmt"
	"testing"
	"time"

	"enjin"
)

// What a member heard goes out in notes of at most maxNoteNodes nodes, each node once, with
// the earliest commit and the earliest deferral's end (so no peer believes a node heard from
// later than it was), and the nodes whose keys changed; taking empties it.
func TestHearingNotes(t *testing.T) {
	var h hearing
	t0 := time.Unix(1000, 0)
	n := maxNoteNodes + 10
	for i := range n {
		h.saw(enjin.NodeID(fmt.Sprintf("n%d", i)), t0.Add(time.Duration(n-i)*time.Millisecond))
	}
	h.saw("n0", t0.Add(time.Hour)) // again: still once
	h.deferred("d1", t0.Add(3*time.Second))
	h.deferred("d2", t0.Add(2*time.Second))
	h.changed("k1")
	notes := h.take("me")
	seen, heard, changed := map[enjin.NodeID]bool{}, 0, 0
	for _, note := range notes {
		if note.Member != "me" || len(note.Seen)+len(note.Heard) > maxNoteNodes {
			t.Fatalf("note of %s with %d seen, %d heard", note.Member, len(note.Seen), len(note.Heard))
		}
		for _, id := range note.Seen {
			if seen[id] {
				t.Fatalf("%s twice", id)
			}
			seen[id] = true
			if note.At != t0.Add(time.Millisecond).UnixNano() {
				t.Fatalf("at %d, want the earliest commit", note.At)
			}
		}
		if len(note.Heard) > 0 && note.Until != t0.Add(2*time.Second).UnixNano() {
			t.Fatalf("until %d, want the earliest end of a deferral", note.Until)
		}
		heard += len(note.Heard)
		changed += len(note.Changed)
	}
	if len(seen) != n || heard != 2 || changed != 1 || len(notes) != 3 {
		t.Fatalf("%d notes: %d seen, %d heard, %d changed; want 3 notes, %d, 2, 1", len(notes), len(seen), heard, changed, n)
	}
	if again := h.take("me"); len(again) != 0 {
		t.Fatalf("taken twice: %+v", again)
	}
}
