package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// writeSecret writes data to path with mode 0600 through a temporary file and a rename, so a
// crash never leaves a half-written key. It refuses to replace an existing file.
func writeSecret(path string, data []byte) error {
	return writeFile(path, data, 0o600, false)
}

// WriteCreds writes a credentials file (mode 0600), replacing any previous one.
func WriteCreds(path string, creds []byte) error {
	return writeFile(path, creds, 0o600, true)
}

func writeFile(path string, data []byte, mode fs.FileMode, replace bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if !replace {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("keys: %s: %w", path, fs.ErrExist)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}

// readSeed reads an nkey seed file and checks it holds a key of the wanted kind.
func readSeed(path string, want nkeys.PrefixByte) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keys: %s: %w", path, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	kp, err := nkeys.FromSeed(trimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	pub, _ := kp.PublicKey()
	if p := nkeys.Prefix(pub); p != want {
		return nil, fmt.Errorf("keys: %s: holds a %v key, want %v", path, p, want)
	}
	return kp, nil
}

// seedFile reads the seed at path, or creates one of kind pfx if there is none.
func seedFile(path string, pfx nkeys.PrefixByte) (nkeys.KeyPair, error) {
	kp, err := readSeed(path, pfx)
	if err == nil || !errors.Is(err, ErrNoKey) {
		return kp, err
	}
	kp, err = nkeys.CreatePair(pfx)
	if err != nil {
		return nil, fmt.Errorf("keys: create %v key: %w", pfx, err)
	}
	seed, _ := kp.Seed()
	if err := writeSecret(path, append(seed, '\n')); err != nil {
		return nil, err
	}
	return kp, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// CopyChain copies the trust chain under fromState/keys to toState/keys, modes kept: how a
// new ring 0 member gets the chain the others hold. It refuses to overwrite a key toState
// already has.
func CopyChain(fromState, toState string) error {
	src := filepath.Join(fromState, "keys")
	if _, err := os.Stat(filepath.Join(src, "operator-signing.seed")); err != nil {
		return fmt.Errorf("keys: copy chain: %w", err)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(toState, "keys", rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(dst, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := writeFile(dst, b, info.Mode().Perm(), false); err != nil {
			return fmt.Errorf("keys: copy chain: %w", err)
		}
		return nil
	})
}
