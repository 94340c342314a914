// The SASL_SSL scenario through franz-go: produce one record and read it back over TLS with
// SCRAM or PLAIN, printing "ok" or the error (tests/oracle/test_sasl_oracle.py compares the
// answers of Kafka and logmq for the right and a wrong password).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func authMechanism(mech, user, password string) (sasl.Mechanism, error) {
	switch mech {
	case "PLAIN":
		return plain.Auth{User: user, Pass: password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("unknown mechanism %s", mech)
}

func runAuth(bs, topic, mech, user, password, cafile string) string {
	pem, err := os.ReadFile(cafile)
	if err != nil {
		return "error " + err.Error()
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	m, err := authMechanism(mech, user, password)
	if err != nil {
		return "error " + err.Error()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(bs), kgo.SASL(m),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, ServerName: "localhost"}),
		kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return "error " + err.Error()
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cl.Ping(ctx); err != nil { // the SASL answer, where producing would retry it
		if isAuthError(err) {
			return "authentication failed"
		}
		return "error " + err.Error()
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
		if isAuthError(err) {
			return "authentication failed"
		}
		return "error " + err.Error()
	}
	fetches := cl.PollFetches(ctx)
	if errs := fetches.Errors(); len(errs) > 0 {
		return "error " + errs[0].Err.Error()
	}
	for _, r := range fetches.Records() {
		if string(r.Value) == "v" {
			return "ok"
		}
	}
	return "no record"
}

func isAuthError(err error) bool {
	s := err.Error()
	for _, w := range []string{"SASL_AUTHENTICATION_FAILED", "Authentication failed", "authentication failed"} {
		if len(s) >= len(w) && contains(s, w) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
