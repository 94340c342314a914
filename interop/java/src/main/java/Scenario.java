// The differential scenario through Apache Kafka's Java clients (Admin, KafkaProducer,
// KafkaConsumer 4.4.0); the same fixed script as interop/python/common.py, printing one JSON
// object of observations. Usage: java -cp target/classes:target/lib/* Scenario
//   --bootstrap HOST:PORT --prefix P

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ApiException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Scenario {
  static final int PARTITIONS = 2;
  static final long BASE_TS = 1_700_000_000_000L;
  static final long[] TS_DELTAS = {0, 5000, 9000, 1000, 3000, 2000};
  static final long BY_TIME = BASE_TS + 2500, FUTURE = BASE_TS + 1_000_000_000L;
  static final String[] CONFIG_KEYS = {"cleanup.policy", "retention.ms", "retention.bytes",
      "segment.bytes", "max.message.bytes", "message.timestamp.type", "compression.type",
      "min.insync.replicas", "min.compaction.lag.ms", "delete.retention.ms", "flush.messages",
      "flush.ms"};
  static final long T = 15;
  static final Map<String, Object> ops = new TreeMap<>();
  static String bs, topic, group;

  interface Op { Object run() throws Exception; }

  static void op(String name, Op fn) {
    Object v;
    try {
      v = fn.run();
    } catch (Exception e) {
      v = Map.of("error", errorName(e));
    }
    ops.put(name, v);
  }

  static String errorName(Throwable e) {
    while ((e instanceof ExecutionException || e instanceof KafkaException)
        && e.getCause() != null && !(e instanceof ApiException)) e = e.getCause();
    if (e instanceof ApiException) {
      Errors err = Errors.forException(e);
      return err == Errors.UNKNOWN_SERVER_ERROR ? e.getClass().getSimpleName() : err.name();
    }
    return e.getClass().getSimpleName();
  }

  static Properties props(Object... kv) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bs);
    for (int i = 0; i < kv.length; i += 2) p.put(kv[i], kv[i + 1]);
    return p;
  }

  static KafkaConsumer<byte[], byte[]> consumer(Object... kv) {
    Properties p = props(kv);
    p.put("key.deserializer", ByteArrayDeserializer.class.getName());
    p.put("value.deserializer", ByteArrayDeserializer.class.getName());
    p.put("enable.auto.commit", "false");
    return new KafkaConsumer<>(p);
  }

  static KafkaProducer<byte[], byte[]> producer(Object... kv) {
    Properties p = props(kv);
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    return new KafkaProducer<>(p);
  }

  static String s(byte[] b) { return b == null ? null : new String(b, StandardCharsets.UTF_8); }

  static List<TopicPartition> tps() {
    List<TopicPartition> l = new ArrayList<>();
    for (int p = 0; p < PARTITIONS; p++) l.add(new TopicPartition(topic, p));
    return l;
  }

  static Object listOffsets(Admin admin, OffsetSpec spec) throws Exception {
    Map<TopicPartition, OffsetSpec> req = new HashMap<>();
    for (TopicPartition tp : tps()) req.put(tp, spec);
    Map<String, Object> out = new TreeMap<>();
    for (var e : admin.listOffsets(req).all().get(T, TimeUnit.SECONDS).entrySet())
      out.put(String.valueOf(e.getKey().partition()),
          List.of(e.getValue().offset(), e.getValue().timestamp()));
    return out;
  }

  static Map<String, Object> groupOffsets(Admin admin) throws Exception {
    Map<String, Object> out = new TreeMap<>();
    for (var e : admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
        .get(T, TimeUnit.SECONDS).entrySet())
      out.put(String.valueOf(e.getKey().partition()), e.getValue().offset());
    return out;
  }

  public static void main(String[] args) throws Exception {
    String prefix = null;
    for (int i = 0; i < args.length - 1; i++) {
      if (args[i].equals("--bootstrap")) bs = args[i + 1];
      if (args[i].equals("--prefix")) prefix = args[i + 1];
    }
    topic = prefix + "-java";
    group = prefix + "-java-g";
    try (Admin admin = Admin.create(props("request.timeout.ms", "15000",
        "default.api.timeout.ms", "20000"))) {
      script(admin);
    }
    System.out.println(Json.write(Map.of("client", "java", "ops", ops)));
    System.out.flush();
    System.exit(0);
  }

  static void script(Admin admin) throws Exception {
    Op create = () -> {
      admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all()
          .get(T, TimeUnit.SECONDS);
      return "ok";
    };
    op("create_topic", create);
    op("create_topic_again", create);
    op("metadata", () -> {
      TopicDescription d = null;
      long deadline = System.currentTimeMillis() + T * 1000;
      while (System.currentTimeMillis() < deadline) {
        d = admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS)
            .get(topic);
        if (d.partitions().size() == PARTITIONS) break;
        Thread.sleep(200); // bounded polling
      }
      List<Integer> parts = new ArrayList<>();
      boolean leaders = true;
      for (TopicPartitionInfo p : d.partitions()) {
        parts.add(p.partition());
        leaders &= p.leader() != null;
      }
      return Map.of("partitions", parts, "leaders_known", leaders);
    });
    op("produce", () -> {
      List<Object> out = new ArrayList<>();
      try (var p = producer("enable.idempotence", "true", "linger.ms", "0")) {
        for (int i = 0; i < TS_DELTAS.length; i++) {
          List<Header> h = List.of(new RecordHeader("h", ("" + i).getBytes()),
              new RecordHeader("n", "x".getBytes()));
          var md = p.send(new ProducerRecord<>(topic, i % PARTITIONS, BASE_TS + TS_DELTAS[i],
              ("k" + i).getBytes(), ("v" + i).getBytes(), h)).get(T, TimeUnit.SECONDS);
          out.add(List.of(md.partition(), md.offset()));
        }
      }
      return out;
    });
    op("consume", () -> {
      List<List<Object>> out = new ArrayList<>();
      try (var c = consumer()) {
        c.assign(tps());
        c.seekToBeginning(tps());
        long deadline = System.currentTimeMillis() + T * 1000;
        while (out.size() < TS_DELTAS.length && System.currentTimeMillis() < deadline) {
          for (var r : c.poll(Duration.ofMillis(500))) {
            List<Object> hs = new ArrayList<>();
            for (Header h : r.headers()) hs.add(List.of(h.key(), s(h.value())));
            out.add(List.of(r.partition(), r.offset(), s(r.key()), s(r.value()), hs,
                List.of(r.timestampType().name, r.timestamp())));
          }
        }
      }
      out.sort(Comparator.comparing((List<Object> l) -> (Integer) l.get(0))
          .thenComparing(l -> (Long) l.get(1)));
      return out;
    });
    op("offsets_earliest", () -> listOffsets(admin, OffsetSpec.earliest()));
    op("offsets_latest", () -> listOffsets(admin, OffsetSpec.latest()));
    op("offsets_by_time", () -> listOffsets(admin, OffsetSpec.forTimestamp(BY_TIME)));
    op("offsets_by_time_future", () -> listOffsets(admin, OffsetSpec.forTimestamp(FUTURE)));
    op("offsets_max_timestamp", () -> listOffsets(admin, OffsetSpec.maxTimestamp()));
    op("offsets_for_times", () -> {
      Map<TopicPartition, Long> q = new HashMap<>();
      for (TopicPartition tp : tps()) q.put(tp, BY_TIME);
      Map<String, Object> out = new TreeMap<>();
      try (var c = consumer()) {
        for (var e : c.offsetsForTimes(q, Duration.ofSeconds(T)).entrySet())
          out.put(String.valueOf(e.getKey().partition()),
              e.getValue() == null ? null : e.getValue().offset());
      }
      return out;
    });
    var member = consumer("group.id", group, "auto.offset.reset", "earliest",
        "session.timeout.ms", "10000");
    op("group_consume_commit", () -> {
      member.subscribe(List.of(topic));
      int n = 0;
      long deadline = System.currentTimeMillis() + 2 * T * 1000;
      while (n < TS_DELTAS.length && System.currentTimeMillis() < deadline)
        n += member.poll(Duration.ofMillis(500)).count();
      member.commitSync(Duration.ofSeconds(T));
      Map<String, Object> committed = new TreeMap<>();
      for (var e : member.committed(new HashSet<>(tps()), Duration.ofSeconds(T)).entrySet())
        committed.put(String.valueOf(e.getKey().partition()), e.getValue().offset());
      return Map.of("consumed", n, "committed", committed);
    });
    op("group_describe", () -> {
      var g = admin.describeConsumerGroups(List.of(group)).all().get(T, TimeUnit.SECONDS)
          .get(group);
      List<Integer> parts = new ArrayList<>();
      for (var m : g.members())
        for (var tp : m.assignment().topicPartitions()) parts.add(tp.partition());
      Collections.sort(parts);
      return Map.of("state", g.groupState().toString(), "simple", g.isSimpleConsumerGroup(),
          "protocol", g.partitionAssignor(), "members", g.members().size(), "assignment",
          parts, "type", g.type().toString());
    });
    op("group_list", () -> {
      for (var g : admin.listGroups().all().get(T, TimeUnit.SECONDS))
        if (g.groupId().equals(group)) return true;
      return false;
    });
    member.close(Duration.ofSeconds(T));
    op("group_offsets", () -> groupOffsets(admin));
    op("group_reset", () -> {
      Map<TopicPartition, OffsetAndMetadata> to = new HashMap<>();
      for (TopicPartition tp : tps()) to.put(tp, new OffsetAndMetadata(1));
      admin.alterConsumerGroupOffsets(group, to).all().get(T, TimeUnit.SECONDS);
      return Map.of("after", groupOffsets(admin));
    });
    op("describe_configs", () -> {
      var r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      Config cfg = admin.describeConfigs(List.of(r)).all().get(T, TimeUnit.SECONDS).get(r);
      Map<String, Object> out = new TreeMap<>();
      for (String k : CONFIG_KEYS) {
        ConfigEntry e = cfg.get(k);
        out.put(k, e == null ? "<absent>" : String.valueOf(e.value()));
      }
      return out;
    });
    op("describe_broker_configs", () -> {
      String id = admin.describeCluster().nodes().get(T, TimeUnit.SECONDS).iterator().next()
          .idString();
      var r = new ConfigResource(ConfigResource.Type.BROKER, id);
      Config cfg = admin.describeConfigs(List.of(r)).all().get(T, TimeUnit.SECONDS).get(r);
      Map<String, Object> out = new TreeMap<>();
      for (String k : new String[] {"log.retention.hours", "num.partitions",
          "auto.create.topics.enable"}) {
        ConfigEntry e = cfg.get(k);
        out.put(k, e == null ? "<absent>" : String.valueOf(e.value()));
      }
      return out;
    });
    op("delete_records", () -> {
      var tp0 = new TopicPartition(topic, 0);
      var res = admin.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(2)))
          .lowWatermarks().get(tp0).get(T, TimeUnit.SECONDS);
      return Map.of("low_watermark", List.of(res.lowWatermark()),
          "earliest_after", listOffsets(admin, OffsetSpec.earliest()));
    });
    op("unknown_topic_metadata", () -> {
      admin.describeTopics(List.of(topic + "-nope")).allTopicNames().get(T, TimeUnit.SECONDS);
      return "ok";
    });
    op("unknown_topic_offsets", () -> admin.listOffsets(Map.of(
        new TopicPartition(topic + "-nope", 0), OffsetSpec.latest())).all()
        .get(T, TimeUnit.SECONDS).toString());
    op("create_topic_assignment", () -> {
      String name = topic + "-assigned"; // replica [0] per partition: node 0 on both brokers
      admin.createTopics(List.of(new NewTopic(name, Map.of(0, List.of(0), 1, List.of(0)))))
          .all().get(T, TimeUnit.SECONDS);
      return Map.of("partitions", admin.describeTopics(List.of(name)).allTopicNames()
          .get(T, TimeUnit.SECONDS).get(name).partitions().size());
    });
    op("commit_unknown_topic", () -> {
      try (var c = consumer("group.id", group + "-nope")) {
        c.commitSync(Map.of(new TopicPartition(topic + "-nope", 0), new OffsetAndMetadata(1)),
            Duration.ofSeconds(T));
      }
      return "ok";
    });
    op("create_partitions", () -> {
      admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all()
          .get(T, TimeUnit.SECONDS);
      return "ok";
    });
    op("incremental_alter_configs", () -> {
      var r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
          new ConfigEntry("retention.ms", "123456"), AlterConfigOp.OpType.SET)))).all()
          .get(T, TimeUnit.SECONDS);
      // KRaft applies an altered config to the broker's metadata image a moment after the
      // alter returns, so Kafka itself can still describe the old value: read until it shows
      // (bounded), as a client wanting its own write would
      long until = System.currentTimeMillis() + 10_000;
      String seen;
      do {
        seen = admin.describeConfigs(List.of(r)).all().get(T, TimeUnit.SECONDS).get(r)
            .get("retention.ms").value();
      } while (!"123456".equals(seen) && System.currentTimeMillis() < until);
      return seen;
    });
    op("delete_group", () -> {
      admin.deleteConsumerGroups(List.of(group)).all().get(T, TimeUnit.SECONDS);
      return "ok";
    });
    op("transactions", () -> {
      try (var p = producer("transactional.id", topic + "-tx", "max.block.ms", "15000")) {
        p.initTransactions();
        p.beginTransaction();
        p.send(new ProducerRecord<>(topic, 1, null, "committed".getBytes()));
        p.commitTransaction();
        p.beginTransaction();
        p.send(new ProducerRecord<>(topic, 1, null, "aborted".getBytes()));
        p.abortTransaction();
      }
      List<Object> seen = new ArrayList<>();
      try (var c = consumer("isolation.level", "read_committed")) {
        var tp = new TopicPartition(topic, 1);
        c.assign(List.of(tp));
        c.seek(tp, 3);
        long deadline = System.currentTimeMillis() + 10_000;
        while (seen.isEmpty() && System.currentTimeMillis() < deadline)
          for (var r : c.poll(Duration.ofMillis(500))) seen.add(s(r.value()));
      }
      return seen;
    });
    op("delete_topic", () -> {
      admin.deleteTopics(List.of(topic)).all().get(T, TimeUnit.SECONDS);
      long deadline = System.currentTimeMillis() + T * 1000;
      while (System.currentTimeMillis() < deadline) {
        try {
          admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
          return Map.of("error", errorName(e));
        }
        Thread.sleep(200); // bounded polling
      }
      return "still there";
    });
  }
}
