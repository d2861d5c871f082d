// Command sampleapp is the app enjin's tests and README deploy: an HTTP server on $PORT that
// answers every path with a greeting naming its release, and /healthz with "ok". Set CRASH=1
// to make it exit at once (a crash loop), NEVER_HEALTHY=1 to make /healthz fail, and
// PROBE=tcp:host:port,file:/path,… to have it try, PROBE_N times each, to reach what an
// isolated app must not, printing "probe <target> ok=<n> fail=<n>" for each.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// probe tries target n times at once and counts what got through.
func probe(target string, n int) (ok, fail int64) {
	var okN, failN atomic.Int64
	var wg sync.WaitGroup
	kind, what, _ := strings.Cut(target, ":")
	for range n {
		wg.Go(func() {
			var err error
			switch kind {
			case "tcp":
				var c net.Conn
				if c, err = net.DialTimeout("tcp", what, 300*time.Millisecond); err == nil {
					c.Close()
				}
			case "file":
				var f *os.File
				if f, err = os.Open(what); err == nil {
					_, err = f.Read(make([]byte, 1))
					f.Close()
				}
			default:
				err = fmt.Errorf("unknown probe %q", kind)
			}
			if err == nil {
				okN.Add(1)
			} else {
				failN.Add(1)
			}
		})
	}
	wg.Wait()
	return okN.Load(), failN.Load()
}

func main() {
	if targets := os.Getenv("PROBE"); targets != "" {
		n, _ := strconv.Atoi(os.Getenv("PROBE_N"))
		for _, t := range strings.Split(targets, ",") {
			ok, fail := probe(t, max(n, 1))
			fmt.Printf("probe %s ok=%d fail=%d\n", t, ok, fail)
		}
	}
	if os.Getenv("CRASH") == "1" {
		fmt.Fprintln(os.Stderr, "crashing on purpose")
		os.Exit(3)
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("NEVER_HEALTHY") == "1" {
			http.Error(w, "not healthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("request", r.Method, r.URL.Path)
		fmt.Fprintf(w, "hello from %s release %s instance %s\n", os.Getenv("ENJIN_APP"), os.Getenv("ENJIN_RELEASE"), os.Getenv("ENJIN_INSTANCE"))
	})
	fmt.Println("listening on", os.Getenv("PORT"))
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
