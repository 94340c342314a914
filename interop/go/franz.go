package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func runFranz(rec *recorder, bs, topic string) {
	group := topic + "-g"
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bs), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tctx := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, timeout) }

	create := func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		r, err := adm.CreateTopics(c, partitions, 1, nil, topic)
		if err != nil {
			return nil, err
		}
		return "ok", r[topic].Err
	}
	rec.op("create_topic", create)
	rec.op("create_topic_again", create)
	rec.op("metadata", func() (any, error) {
		var parts []int32
		leaders := true
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			c, cancel := tctx()
			md, err := adm.Metadata(c, topic)
			cancel()
			if err != nil {
				return nil, err
			}
			t := md.Topics[topic]
			if t.Err != nil {
				return nil, t.Err
			}
			parts, leaders = nil, true
			for p, d := range t.Partitions {
				parts = append(parts, p)
				leaders = leaders && d.Leader >= 0
			}
			if len(parts) == partitions {
				break
			}
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		return map[string]any{"partitions": parts, "leaders_known": leaders}, nil
	})
	rec.op("produce", func() (any, error) {
		p, err := kgo.NewClient(kgo.SeedBrokers(bs), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			return nil, err
		}
		defer p.Close()
		var out [][2]int64
		for i := range tsDeltas {
			part, k, v, h, ts := record(i)
			r := &kgo.Record{Topic: topic, Partition: part, Key: []byte(k), Value: []byte(v),
				Timestamp: time.UnixMilli(ts)}
			for _, kv := range h {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: kv[0], Value: []byte(kv[1])})
			}
			c, cancel := tctx()
			err := p.ProduceSync(c, r).FirstErr()
			cancel()
			if err != nil {
				return nil, err
			}
			out = append(out, [2]int64{int64(r.Partition), r.Offset})
		}
		return out, nil
	})
	consume := func(want int, opts ...kgo.Opt) ([][]any, *kgo.Client, error) {
		c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(bs)}, opts...)...)
		if err != nil {
			return nil, nil, err
		}
		var out [][]any
		deadline := time.Now().Add(timeout)
		for len(out) < want && time.Now().Before(deadline) {
			pc, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := c.PollFetches(pc)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				var hs [][2]string
				for _, h := range r.Headers {
					hs = append(hs, [2]string{h.Key, string(h.Value)})
				}
				out = append(out, []any{r.Partition, r.Offset, string(r.Key), string(r.Value), hs,
					r.Timestamp.UnixMilli()})
			})
		}
		sort.Slice(out, func(i, j int) bool {
			a, b := out[i], out[j]
			if a[0].(int32) != b[0].(int32) {
				return a[0].(int32) < b[0].(int32)
			}
			return a[1].(int64) < b[1].(int64)
		})
		return out, c, nil
	}
	rec.op("consume", func() (any, error) {
		start := kgo.NewOffset().AtStart()
		out, c, err := consume(len(tsDeltas), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			topic: {0: start, 1: start}}))
		if c != nil {
			c.Close()
		}
		return out, err
	})
	listed := func(lo kadm.ListedOffsets, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		var firstErr error
		lo.Each(func(o kadm.ListedOffset) {
			out[fmt.Sprint(o.Partition)] = []int64{o.Offset, o.Timestamp}
			if o.Err != nil && firstErr == nil {
				firstErr = o.Err
			}
		})
		return out, firstErr
	}
	rec.op("offsets_earliest", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		return listed(adm.ListStartOffsets(c, topic))
	})
	rec.op("offsets_latest", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		return listed(adm.ListEndOffsets(c, topic))
	})
	rec.op("offsets_by_time", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		return listed(adm.ListOffsetsAfterMilli(c, byTime, topic))
	})
	var member *kgo.Client
	rec.op("group_consume_commit", func() (any, error) {
		out, c, err := consume(len(tsDeltas), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		member = c
		if err != nil {
			return nil, err
		}
		cc, cancel := tctx()
		defer cancel()
		if err := c.CommitUncommittedOffsets(cc); err != nil {
			return nil, err
		}
		return map[string]any{"consumed": len(out)}, nil
	})
	rec.op("group_describe", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		gs, err := adm.DescribeGroups(c, group)
		if err != nil {
			return nil, err
		}
		g := gs[group]
		var parts []int32
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range a.Topics {
					parts = append(parts, t.Partitions...)
				}
			}
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		return map[string]any{"state": g.State, "protocol_type": g.ProtocolType,
			"protocol": g.Protocol, "members": len(g.Members), "assignment": parts}, g.Err
	})
	if member != nil {
		member.Close()
	}
	rec.op("group_offsets", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		r, err := adm.FetchOffsets(c, group)
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		r.Each(func(o kadm.OffsetResponse) { out[fmt.Sprint(o.Partition)] = o.At })
		return out, r.Error()
	})
	rec.op("describe_configs", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		rc, err := adm.DescribeTopicConfigs(c, topic)
		if err != nil {
			return nil, err
		}
		got := map[string]string{}
		for _, r := range rc {
			for _, e := range r.Configs {
				if e.Value != nil {
					got[e.Key] = *e.Value
				}
			}
		}
		out := map[string]any{}
		for _, k := range configKeys {
			if v, ok := got[k]; ok {
				out[k] = v
			} else {
				out[k] = "<absent>"
			}
		}
		return out, nil
	})
	rec.op("delete_records", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		o := kadm.Offsets{}
		o.Add(kadm.Offset{Topic: topic, Partition: 0, At: 2})
		r, err := adm.DeleteRecords(c, o)
		if err != nil {
			return nil, err
		}
		if err := r.Error(); err != nil {
			return nil, err
		}
		return listed(adm.ListStartOffsets(c, topic))
	})
	rec.op("unknown_topic_metadata", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		md, err := adm.Metadata(c, topic+"-nope")
		if err != nil {
			return nil, err
		}
		return "ok", md.Topics[topic+"-nope"].Err
	})
	rec.op("create_partitions", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		r, err := adm.CreatePartitions(c, 1, topic)
		if err != nil {
			return nil, err
		}
		return "ok", r[topic].Err
	})
	rec.op("delete_group", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		r, err := adm.DeleteGroups(c, group)
		if err != nil {
			return nil, err
		}
		return "ok", r.Error()
	})
	rec.op("transactions", func() (any, error) {
		tc, err := kgo.NewClient(kgo.SeedBrokers(bs), kgo.TransactionalID(topic+"-tx"),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(10*time.Second))
		if err != nil {
			return nil, err
		}
		defer tc.Close()
		for _, commit := range []bool{true, false} {
			c, cancel := tctx()
			if err := tc.BeginTransaction(); err != nil {
				cancel()
				return nil, err
			}
			v := map[bool]string{true: "committed", false: "aborted"}[commit]
			if err := tc.ProduceSync(c, &kgo.Record{Topic: topic, Partition: 1, Value: []byte(v)}).FirstErr(); err != nil {
				cancel()
				return nil, err
			}
			err := tc.EndTransaction(c, kgo.TransactionEndTry(commit))
			cancel()
			if err != nil {
				return nil, err
			}
		}
		out, rc, err := consume(1, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			topic: {1: kgo.NewOffset().At(3)}}), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxWait(500*time.Millisecond))
		if rc != nil {
			rc.Close()
		}
		var seen []string
		for _, r := range out {
			seen = append(seen, r[3].(string))
		}
		return seen, err
	})
	rec.op("delete_topic", func() (any, error) {
		c, cancel := tctx()
		defer cancel()
		r, err := adm.DeleteTopics(c, topic)
		if err != nil {
			return nil, err
		}
		return "ok", r[topic].Err
	})
}
