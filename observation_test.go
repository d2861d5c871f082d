package enjin_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"enjin"
)

// TestSignedObservationJSON: signatures and payloads travel as unpadded base64url, both
// ways, and an answer that is not base64url does not decode.
func TestSignedObservationJSON(t *testing.T) {
	in := enjin.SignedObservation{Node: "n1", Seq: 7, Sig: enjin.Base64URL{0xfb, 0xff, 0x01}, Payload: enjin.Base64URL(`{"state":"up"}`)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"sig":"-_8B"`) || !strings.Contains(string(b), `"payload":"eyJzdGF0ZSI6InVwIn0"`) {
		t.Fatalf("encoded %s: want unpadded base64url", b)
	}
	var out enjin.SignedObservation
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Sig, in.Sig) || !bytes.Equal(out.Payload, in.Payload) || out.Node != in.Node || out.Seq != in.Seq {
		t.Fatalf("round trip: %+v, want %+v", out, in)
	}
	for _, bad := range []string{`{"sig":"%%"}`, `{"sig":"-_8B=="}`, `{"payload":"a+b/"}`, `{"sig":12}`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
