package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// groupHandler consumes until want records were seen, then commits what it marked.
type groupHandler struct {
	want int
	mu   sync.Mutex
	seen int
	done chan struct{}
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		s.MarkMessage(m, "")
		h.mu.Lock()
		h.seen++
		last := h.seen == h.want
		h.mu.Unlock()
		if last { // every claim marked its records before counting them
			s.Commit()
			close(h.done)
		}
	}
	return nil
}

func runSarama(rec *recorder, bs, topic string) {
	group := topic + "-g"
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Admin.Timeout = timeout
	cfg.Net.DialTimeout = timeout
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	client, err := sarama.NewClient([]string{bs}, cfg)
	if err != nil {
		panic(err)
	}
	defer client.Close()
	adm, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		panic(err)
	}
	create := func() (any, error) {
		return "ok", adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions,
			ReplicationFactor: 1}, false)
	}
	rec.op("create_topic", create)
	rec.op("create_topic_again", create)
	rec.op("metadata", func() (any, error) {
		var md []*sarama.TopicMetadata
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			md, err = adm.DescribeTopics([]string{topic})
			if err != nil {
				return nil, err
			}
			if len(md) == 1 && len(md[0].Partitions) == partitions {
				break
			}
		}
		if md[0].Err != sarama.ErrNoError {
			return nil, md[0].Err
		}
		var parts []int32
		leaders := true
		for _, p := range md[0].Partitions {
			parts = append(parts, p.ID)
			leaders = leaders && p.Leader >= 0
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		return map[string]any{"partitions": parts, "leaders_known": leaders}, nil
	})
	rec.op("produce", func() (any, error) {
		p, err := sarama.NewSyncProducerFromClient(client)
		if err != nil {
			return nil, err
		}
		var out [][2]int64
		for i := range tsDeltas {
			part, k, v, h, ts := record(i)
			m := &sarama.ProducerMessage{Topic: topic, Partition: part, Key: sarama.StringEncoder(k),
				Value: sarama.StringEncoder(v), Timestamp: time.UnixMilli(ts)}
			for _, kv := range h {
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(kv[0]), Value: []byte(kv[1])})
			}
			gotP, off, err := p.SendMessage(m)
			if err != nil {
				return nil, err
			}
			out = append(out, [2]int64{int64(gotP), off})
		}
		return out, nil
	})
	rec.op("consume", func() (any, error) {
		c, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		var out [][]any
		for p := int32(0); p < partitions; p++ {
			pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				return nil, err
			}
			for n := 0; n < len(tsDeltas)/partitions; n++ {
				select {
				case m := <-pc.Messages():
					var hs [][2]string
					for _, h := range m.Headers {
						hs = append(hs, [2]string{string(h.Key), string(h.Value)})
					}
					out = append(out, []any{m.Partition, m.Offset, string(m.Key), string(m.Value), hs,
						m.Timestamp.UnixMilli()})
				case <-time.After(timeout):
					n = len(tsDeltas)
				}
			}
			pc.Close()
		}
		return out, nil
	})
	offsets := func(at int64) (any, error) {
		out := map[string]any{}
		for p := int32(0); p < partitions; p++ {
			o, err := client.GetOffset(topic, p, at)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(p)] = o
		}
		return out, nil
	}
	rec.op("offsets_earliest", func() (any, error) { return offsets(sarama.OffsetOldest) })
	rec.op("offsets_latest", func() (any, error) { return offsets(sarama.OffsetNewest) })
	rec.op("offsets_by_time", func() (any, error) { return offsets(byTime) })
	var stopGroup func()
	rec.op("group_consume_commit", func() (any, error) {
		cg, err := sarama.NewConsumerGroupFromClient(group, client)
		if err != nil {
			return nil, err
		}
		h := &groupHandler{want: len(tsDeltas), done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil {
					return
				}
			}
		}()
		stopGroup = func() { cancel(); wg.Wait(); cg.Close() }
		select {
		case <-h.done:
		case <-time.After(timeout):
			return nil, fmt.Errorf("consumed %d of %d", h.seen, h.want)
		}
		return map[string]any{"consumed": h.want}, nil
	})
	rec.op("group_describe", func() (any, error) {
		gs, err := adm.DescribeConsumerGroups([]string{group})
		if err != nil {
			return nil, err
		}
		g := gs[0]
		var parts []int32
		for _, m := range g.Members {
			a, err := m.GetMemberAssignment()
			if err != nil {
				return nil, err
			}
			if a != nil {
				for _, ps := range a.Topics {
					parts = append(parts, ps...)
				}
			}
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		return map[string]any{"state": g.State, "protocol_type": g.ProtocolType,
			"protocol": g.Protocol, "members": len(g.Members), "assignment": parts}, nil
	})
	if stopGroup != nil {
		stopGroup()
	}
	rec.op("group_offsets", func() (any, error) {
		r, err := adm.ListConsumerGroupOffsets(group, nil)
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for p, b := range r.Blocks[topic] {
			out[fmt.Sprint(p)] = b.Offset
		}
		return out, nil
	})
	rec.op("describe_configs", func() (any, error) {
		es, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		if err != nil {
			return nil, err
		}
		got := map[string]string{}
		for _, e := range es {
			got[e.Name] = e.Value
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
		if err := adm.DeleteRecords(topic, map[int32]int64{0: 2}); err != nil {
			return nil, err
		}
		return offsets(sarama.OffsetOldest)
	})
	rec.op("unknown_topic_metadata", func() (any, error) {
		md, err := adm.DescribeTopics([]string{topic + "-nope"})
		if err != nil {
			return nil, err
		}
		if md[0].Err != sarama.ErrNoError {
			return nil, md[0].Err
		}
		return "ok", nil
	})
	rec.op("create_partitions", func() (any, error) {
		return "ok", adm.CreatePartitions(topic, 3, nil, false)
	})
	rec.op("delete_group", func() (any, error) {
		return "ok", adm.DeleteConsumerGroup(group)
	})
	rec.op("delete_topic", func() (any, error) {
		return "ok", adm.DeleteTopic(topic)
	})
}
