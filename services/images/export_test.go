package images

import "bytes"

// Hooks into the package's internals for the external tests.

// Sniffs runs every magic check on b as a file of size bytes and returns what sniff names.
func Sniffs(b []byte, size int64) string {
	r := bytes.NewReader(b)
	isBzImage(r, size)
	initrdKind(r, size)
	return sniff(r, size)
}

// InfoProblem reads b as qemu-img info's answer and names what refuses it as declared.
func InfoProblem(b []byte, declared Format, lim Limits) (string, error) {
	ii, err := parseInfo(b)
	if err != nil {
		return "", err
	}
	return ii.problem(declared, lim.WithDefaults()), nil
}
