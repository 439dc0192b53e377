// The dispatch benchmark's destination, compiled so that its CPU per request stays far below
// the dispatcher's: it answers POST /latency/<ms>[/<tag>] with 204 after <ms> milliseconds and
// counts what arrived. GET /stats reports the counts as JSON, DELETE /stats resets them, and
// GET /count is the arrival count alone. The standard library only: building it downloads
// nothing.
//
// It speaks HTTP/1.1, and HTTP/2 over cleartext with prior knowledge (h2c) where the Go that
// builds it has that in the standard library (1.24 on: h2c.go), for the transport comparison.
//
// It serves on a free loopback port and writes the number to -port-file (renamed into place,
// so a reader never sees half of it); it exits after -lifetime seconds should the benchmark
// die without stopping it. benchmarks/dispatch/sink.py builds and starts it.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// counts is what arrived since the last reset. Times (first, last, and "now" in /stats) are
// seconds since the sink started: the benchmark only ever takes their differences.
type counts struct {
	mu       sync.Mutex
	start    time.Time
	count    int64
	first    float64
	last     float64
	paths    map[string]int64
	distinct map[string]map[string]struct{}
}

func newCounts() *counts {
	c := &counts{start: time.Now()}
	c.clear()
	return c
}

func (c *counts) clear() {
	c.count, c.first, c.last = 0, 0, 0
	c.paths = map[string]int64{}
	c.distinct = map[string]map[string]struct{}{}
}

// latency is how long /latency/<ms>[/<tag>] asks the sink to wait, and whether it names a
// tag (one of many destinations, whose distinct event ids are counted so that retried
// attempts do not count twice).
func latency(path string) (time.Duration, bool) {
	parts := strings.Split(path, "/")
	if len(parts) < 3 || parts[1] != "latency" {
		return 0, false
	}
	ms, err := strconv.Atoi(parts[2])
	if err != nil {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, len(parts) >= 4
}

func (c *counts) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	delay, tagged := latency(r.URL.Path)
	id := ""
	if tagged {
		var event struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &event) // a body without an id counts as the id ""
		id = event.ID
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	now := time.Since(c.start).Seconds()
	c.mu.Lock()
	if c.count == 0 {
		c.first = now
	}
	c.count++
	c.last = now
	c.paths[r.URL.Path]++
	if tagged {
		ids := c.distinct[r.URL.Path]
		if ids == nil {
			ids = map[string]struct{}{}
			c.distinct[r.URL.Path] = ids
		}
		ids[id] = struct{}{}
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (c *counts) stats(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	distinct := make(map[string]int, len(c.distinct))
	for path, ids := range c.distinct {
		distinct[path] = len(ids)
	}
	body, err := json.Marshal(map[string]any{
		"count": c.count, "first": c.first, "last": c.last,
		"now": time.Since(c.start).Seconds(), "paths": c.paths, "distinct": distinct,
	})
	c.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (c *counts) route(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost:
		c.receive(w, r)
	case r.URL.Path == "/stats" && r.Method == http.MethodGet:
		c.stats(w, r)
	case r.URL.Path == "/stats" && r.Method == http.MethodDelete:
		c.mu.Lock()
		c.clear()
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/count" && r.Method == http.MethodGet:
		c.mu.Lock()
		count := c.count
		c.mu.Unlock()
		_, _ = w.Write([]byte(strconv.FormatInt(count, 10) + "\n"))
	default:
		http.NotFound(w, r)
	}
}

// configure adds what the Go building the sink supports beyond HTTP/1.1 (see h2c.go).
var configure = func(*http.Server) {}

func main() {
	portFile := flag.String("port-file", "", "where to write the port served (required)")
	lifetime := flag.Float64("lifetime", 1800, "seconds after which the sink exits by itself")
	flag.Parse()
	if *portFile == "" {
		log.Fatal("-port-file is required")
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	if err := os.WriteFile(*portFile+".tmp", []byte(strconv.Itoa(port)), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(*portFile+".tmp", *portFile); err != nil {
		log.Fatal(err)
	}
	go func() {
		time.Sleep(time.Duration(*lifetime * float64(time.Second)))
		os.Exit(0)
	}()
	server := &http.Server{Handler: http.HandlerFunc(newCounts().route)}
	configure(server)
	log.Fatal(server.Serve(listener))
}
