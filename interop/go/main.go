// The differential scenario through franz-go (kgo + kadm) and Sarama: the same fixed script
// as interop/python/common.py, printing one JSON object of observations.
// Usage: scenario --client franz-go|sarama --bootstrap HOST:PORT --prefix P
// (or --scenario auth --sasl-mechanism M --user U --password P --cafile CA: franz-go over SASL_SSL)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"
)

const partitions = 2
const baseTS = int64(1_700_000_000_000)

var tsDeltas = []int64{0, 5000, 9000, 1000, 3000, 2000}
var byTime = baseTS + 2500
var configKeys = []string{"cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
	"max.message.bytes", "message.timestamp.type", "compression.type", "min.insync.replicas",
	"min.compaction.lag.ms", "delete.retention.ms", "flush.messages", "flush.ms"}

const timeout = 15 * time.Second

type recorder struct {
	ops map[string]any
}

func (r *recorder) op(name string, fn func() (any, error)) {
	done := make(chan struct{})
	var v any
	var err error
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		v, err = fn()
	}()
	select {
	case <-done:
	case <-time.After(2 * timeout):
		err = fmt.Errorf("timeout")
	}
	if err != nil {
		v = map[string]any{"error": err.Error()}
		fmt.Fprintf(os.Stderr, "--- %s\n%v\n", name, err)
	}
	r.ops[name] = v
}

func record(i int) (int32, string, string, [][2]string, int64) {
	return int32(i % partitions), fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i),
		[][2]string{{"h", fmt.Sprint(i)}, {"n", "x"}}, baseTS + tsDeltas[i]
}

func main() {
	client := flag.String("client", "franz-go", "franz-go or sarama")
	bs := flag.String("bootstrap", "", "HOST:PORT")
	prefix := flag.String("prefix", "", "topic/group name prefix")
	mech := flag.String("sasl-mechanism", "", "with --scenario auth: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
	user := flag.String("user", "", "with --scenario auth: SASL user")
	password := flag.String("password", "", "with --scenario auth: SASL password")
	cafile := flag.String("cafile", "", "with --scenario auth: PEM CA of the TLS listener")
	scenario := flag.String("scenario", "", "auth: only produce+consume one record over SASL_SSL")
	flag.Parse()
	if *scenario == "auth" {
		out, _ := json.Marshal(map[string]any{"client": *client, "auth": runAuth(
			*bs, *prefix+"-franz", *mech, *user, *password, *cafile)})
		fmt.Println(string(out))
		os.Exit(0)
	}
	rec := &recorder{ops: map[string]any{}}
	switch *client {
	case "franz-go":
		runFranz(rec, *bs, *prefix+"-franz")
	case "sarama":
		runSarama(rec, *bs, *prefix+"-sarama")
	default:
		fmt.Fprintln(os.Stderr, "unknown client", *client)
		os.Exit(2)
	}
	out, _ := json.Marshal(map[string]any{"client": *client, "ops": rec.ops})
	fmt.Println(string(out))
	os.Exit(0)
}
