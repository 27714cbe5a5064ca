package serverinfo

import (
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/trustlog/trustlog/functions/response"
)

func TestReplyCache(t *testing.T) {
	var c replyCache
	addrs := []string{"127.0.0.1:8443"}
	k := replyKey{seq: 5, trusted: true, name: "a", fingerprint: "aa"}
	reply := func(s string) response.Reply { return response.SyncReply(s, nil) }

	if _, ok := c.get(k, addrs); ok {
		t.Fatal("an empty cache answered")
	}
	c.put(k, addrs, reply("one"))
	if got, ok := c.get(k, addrs); !ok || bodyOf(got) != "one" {
		t.Fatalf("get after put = %q, %v", bodyOf(got), ok)
	}
	if _, ok := c.get(k, []string{"127.0.0.1:9443"}); ok {
		t.Error("answered for other addresses")
	}
	other := k
	other.fingerprint = "bb"
	if _, ok := c.get(other, addrs); ok {
		t.Error("answered for another caller")
	}

	// A second view of the same sequence joins the first.
	c.put(other, addrs, reply("two"))
	if got, ok := c.get(k, addrs); !ok || bodyOf(got) != "one" {
		t.Errorf("the first view is gone after a second put: %q, %v", bodyOf(got), ok)
	}

	// A put from an older sequence is dropped; a newer one starts again.
	stale := k
	stale.seq = 4
	c.put(stale, addrs, reply("stale"))
	if _, ok := c.get(stale, addrs); ok {
		t.Error("a reply of an older sequence was kept")
	}
	next := k
	next.seq = 6
	c.put(next, addrs, reply("next"))
	if _, ok := c.get(k, addrs); ok {
		t.Error("a reply of the previous sequence answered after the model moved on")
	}
	if got, ok := c.get(next, addrs); !ok || bodyOf(got) != "next" {
		t.Errorf("get of the new sequence = %q, %v", bodyOf(got), ok)
	}

	// Bounded: past maxReplies views the table starts again.
	for i := range maxReplies + 1 {
		v := next
		v.name = string(rune('a'+i%26)) + string(rune(i))
		c.put(v, addrs, reply("x"))
	}
	if n := len(c.table.Load().entries); n > maxReplies {
		t.Errorf("the cache holds %d entries, more than %d", n, maxReplies)
	}
}

// bodyOf returns the metadata string rp carries.
func bodyOf(rp response.Reply) string {
	rec := httptest.NewRecorder()
	rp.Write(rec)
	var env struct{ Metadata string }
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		return "undecodable: " + err.Error()
	}
	return env.Metadata
}

// TestReplyCacheConcurrent has readers and writers race (run with -race).
func TestReplyCacheConcurrent(t *testing.T) {
	var c replyCache
	addrs := []string{"127.0.0.1:8443"}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				k := replyKey{seq: uint64(i / 50), name: string(rune('a' + w))}
				if _, ok := c.get(k, addrs); !ok {
					c.put(k, addrs, response.Reply{})
				}
			}
		})
	}
	wg.Wait()
}
