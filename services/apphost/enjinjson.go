package apphost

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"enjin"
)

// decodeEnjinJSON reads enjin.json into m: one JSON object, each key at most once, only the
// fields a manifest has, integers where numbers go. The rules on values are m.check's.
func decodeEnjinJSON(b []byte, m *Manifest) error {
	switch {
	case len(b) > maxManifestFile:
		return jsonErr("enjin.json", "%d bytes; at most %d", len(b), maxManifestFile)
	case !utf8.Valid(b):
		return jsonErr("enjin.json", "not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := openObject(d, "enjin.json", "enjin.json"); err != nil {
		return err
	}
	var l Limits
	err := eachKey(d, "enjin.json", "", func(key string) error {
		if f, ok := limitField(key); ok {
			n, err := readInt(d, key)
			*f.of(&l) = n
			return err
		}
		switch key {
		case "instances":
			m.Instances = map[string]int{}
			return eachKey(d, "instances", "instances.", func(t string) error {
				n, err := readInt(d, "instances."+fieldKey(t))
				m.Instances[t] = n
				return err
			})
		case "health":
			return readString(d, "health", &m.Health)
		case "env":
			m.Env = map[string]string{}
			return eachKey(d, "env", "env.", func(k string) error {
				var v string
				err := readString(d, "env."+fieldKey(k), &v)
				m.Env[k] = v
				return err
			})
		case "networks":
			return readNetworks(d, &m.Networks)
		case "spread":
			tok, err := d.Token()
			spread, ok := tok.(bool)
			if err != nil || !ok {
				return jsonErr("spread", "want true or false")
			}
			m.OneHost = !spread
			return nil
		case "cron":
			m.Cron = map[string]CronJob{}
			return eachKey(d, "cron", "cron.", func(name string) error {
				var j CronJob
				f := "cron." + fieldKey(name)
				err := eachKey(d, f, f+".", func(k string) error {
					switch k {
					case "schedule":
						return readString(d, f+".schedule", &j.Schedule)
					case "command":
						return readString(d, f+".command", &j.Command)
					}
					return jsonErr(f+"."+fieldKey(k), "unknown field: want schedule and command")
				})
				m.Cron[name] = j
				return err
			})
		case "procfile":
			return jsonErr("procfile", "process types come from the Procfile only")
		}
		return jsonErr(fieldKey(key), "unknown field")
	})
	if err != nil {
		return err
	}
	m.MemoryMB, m.CPUMillis, m.Pids, m.DiskMB, m.TmpMB = l.MemoryMB, l.CPUMillis, l.Pids, l.DiskMB, l.TmpMB
	if _, err := d.Token(); err != io.EOF {
		return jsonErr("enjin.json", "data after the JSON object")
	}
	return nil
}

// openObject reads the { that must begin the value of field.
func openObject(d *json.Decoder, field, what string) error {
	tok, err := d.Token()
	if err != nil {
		return jsonErr("enjin.json", "%v", err)
	}
	if tok != json.Delim('{') {
		return jsonErr(field, "want a JSON object as %s, not %s", what, kind(tok))
	}
	return nil
}

// eachKey reads an object (after its opening brace for the top level, prefix ""; with it
// otherwise), calling fn for each key to read its value; a key may appear once.
func eachKey(d *json.Decoder, field, prefix string, fn func(key string) error) error {
	if prefix != "" {
		if err := openObject(d, field, "the value"); err != nil {
			return err
		}
	}
	return eachKeyOpened(d, prefix, fn)
}

// eachKeyOpened is eachKey for an object whose opening brace has been read, its fields named
// with prefix.
func eachKeyOpened(d *json.Decoder, prefix string, fn func(key string) error) error {
	seen := map[string]bool{}
	for {
		tok, err := d.Token()
		if err != nil {
			return jsonErr("enjin.json", "%v", err)
		}
		if tok == json.Delim('}') {
			return nil
		}
		key, _ := tok.(string) // the decoder allows only strings here
		if seen[key] {
			return jsonErr(prefix+fieldKey(key), "appears twice")
		}
		seen[key] = true
		if err := fn(key); err != nil {
			return err
		}
	}
}

// readInt reads a JSON integer: no fraction, no exponent.
func readInt(d *json.Decoder, field string) (int, error) {
	tok, err := d.Token()
	if err != nil {
		return 0, jsonErr("enjin.json", "%v", err)
	}
	num, ok := tok.(json.Number)
	if !ok {
		return 0, jsonErr(field, "want an integer, not %s", kind(tok))
	}
	if strings.ContainsAny(string(num), ".eE") {
		return 0, jsonErr(field, "%s: want an integer", quote(string(num)))
	}
	n, err := strconv.ParseInt(string(num), 10, 0)
	if errors.Is(err, strconv.ErrRange) {
		return 0, jsonErr(field, "%s is out of range", quote(string(num)))
	}
	if err != nil {
		return 0, jsonErr(field, "%s: want an integer", quote(string(num)))
	}
	return int(n), nil
}

// readNetworks reads "networks": an array whose elements are a network's name, or an object
// {"name": …, "rulesets": [names…]}.
func readNetworks(d *json.Decoder, out *[]enjin.AppNetwork) error {
	if err := openArray(d, "networks"); err != nil {
		return err
	}
	for i := 0; d.More(); i++ {
		field := "networks." + strconv.Itoa(i)
		if i >= enjin.MaxAppNetworks {
			return jsonErr("networks", "at most %d networks", enjin.MaxAppNetworks)
		}
		tok, err := d.Token()
		if err != nil {
			return jsonErr("enjin.json", "%v", err)
		}
		var n enjin.AppNetwork
		switch tok := tok.(type) {
		case string:
			n.Name = tok
		case json.Delim:
			if tok != '{' {
				return jsonErr(field, "want a network's name or an object, not %s", kind(tok))
			}
			err := eachKeyOpened(d, field+".", func(key string) error {
				switch key {
				case "name":
					return readString(d, field+".name", &n.Name)
				case "rulesets":
					return readStrings(d, field+".rulesets", &n.Rulesets)
				}
				return jsonErr(field+"."+fieldKey(key), "unknown field")
			})
			if err != nil {
				return err
			}
		default:
			return jsonErr(field, "want a network's name or an object, not %s", kind(tok))
		}
		*out = append(*out, n)
	}
	return closeArray(d)
}

// readStrings reads an array of at most enjin.MaxAppNetworks strings.
func readStrings(d *json.Decoder, field string, out *[]string) error {
	if err := openArray(d, field); err != nil {
		return err
	}
	for i := 0; d.More(); i++ {
		if i >= enjin.MaxAppNetworks {
			return jsonErr(field, "at most %d", enjin.MaxAppNetworks)
		}
		var v string
		if err := readString(d, field+"."+strconv.Itoa(i), &v); err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return closeArray(d)
}

func closeArray(d *json.Decoder) error {
	if _, err := d.Token(); err != nil {
		return jsonErr("enjin.json", "%v", err)
	}
	return nil
}

// openArray reads the [ that must begin the value of field.
func openArray(d *json.Decoder, field string) error {
	tok, err := d.Token()
	if err != nil {
		return jsonErr("enjin.json", "%v", err)
	}
	if tok != json.Delim('[') {
		return jsonErr(field, "want a JSON array, not %s", kind(tok))
	}
	return nil
}

func readString(d *json.Decoder, field string, s *string) error {
	tok, err := d.Token()
	if err != nil {
		return jsonErr("enjin.json", "%v", err)
	}
	v, ok := tok.(string)
	if !ok {
		return jsonErr(field, "want a string, not %s", kind(tok))
	}
	*s = v
	return nil
}

// kind names a JSON token for a message.
func kind(tok json.Token) string {
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '[' {
			return "an array"
		}
		return "an object"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "null"
}
