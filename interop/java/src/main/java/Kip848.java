// KIP-848 through Apache Kafka's Java consumer (kafka-clients 4.4.0, group.protocol=consumer):
// two members split a topic with no duplicate and no gap, one leaves and the other takes
// everything and resumes from the commits, and a broker-side regex subscription
// (SubscriptionPattern) picks up a topic created later. Prints one JSON object of what a
// client observes (partition choices are not part of it: two correct assignors may differ).
// Usage: java -cp target/classes:target/lib/* Kip848 --bootstrap HOST:PORT --prefix P

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Kip848 {
  static final int PARTS = 4;
  static final long DEADLINE_MS = 60_000;
  static String bs, prefix, group;

  static final class Member {
    final KafkaConsumer<byte[], byte[]> c;
    final List<int[]> got = new ArrayList<>();  // partition, value
    Member(KafkaConsumer<byte[], byte[]> c) { this.c = c; }
    void pump() {
      for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(50))) {
        got.add(new int[] {r.partition(),
            Integer.parseInt(new String(r.value(), StandardCharsets.UTF_8))});
      }
    }
    Set<Integer> held() {
      Set<Integer> s = new TreeSet<>();
      for (TopicPartition tp : c.assignment()) s.add(tp.partition());
      return s;
    }
  }

  interface Cond { boolean ok(); }

  static boolean until(Cond cond, Member... ms) {
    long end = System.currentTimeMillis() + DEADLINE_MS;
    while (!cond.ok()) {
      if (System.currentTimeMillis() > end) return false;
      for (Member m : ms) m.pump();
    }
    return true;
  }

  static Member member() {
    Properties p = new Properties();
    p.put("bootstrap.servers", bs);
    p.put("group.id", group);
    p.put("group.protocol", "consumer");
    p.put("enable.auto.commit", "false");
    p.put("auto.offset.reset", "earliest");
    p.put("key.deserializer", ByteArrayDeserializer.class.getName());
    p.put("value.deserializer", ByteArrayDeserializer.class.getName());
    return new Member(new KafkaConsumer<>(p));
  }

  static void produce(String topic, int start, int count, int parts) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", bs);
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    try (KafkaProducer<byte[], byte[]> prod = new KafkaProducer<>(p)) {
      for (int i = start; i < start + count; i++) {
        prod.send(new ProducerRecord<>(topic, i % parts, null,
            Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
      }
      prod.flush();
    }
  }

  static Set<Integer> values(List<int[]> got, int from) {
    Set<Integer> s = new TreeSet<>();
    for (int i = from; i < got.size(); i++) s.add(got.get(i)[1]);
    return s;
  }

  static Set<Integer> range(int start, int count) {
    Set<Integer> s = new TreeSet<>();
    for (int i = start; i < start + count; i++) s.add(i);
    return s;
  }

  public static void main(String[] args) throws Exception {
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].equals("--bootstrap")) bs = args[i + 1];
      if (args[i].equals("--prefix")) prefix = args[i + 1];
    }
    String topic = prefix + "-jt";
    group = prefix + "-jg";
    Map<String, Object> out = new TreeMap<>();
    Properties ap = new Properties();
    ap.put("bootstrap.servers", bs);
    try (Admin admin = Admin.create(ap)) {
      admin.createTopics(List.of(new NewTopic(topic, PARTS, (short) 1),
          new NewTopic(prefix + "-jrx-1", 2, (short) 1))).all().get();
    }
    produce(topic, 0, 100, PARTS);
    Member a = member();
    a.c.subscribe(List.of(topic));
    boolean ok = until(() -> a.got.size() == 100, a);
    out.put("a_alone", Map.of("ok", ok, "held", a.held().size(),
        "exact", values(a.got, 0).equals(range(0, 100))));
    a.c.commitSync();
    Member b = member();
    b.c.subscribe(List.of(topic));
    ok = until(() -> a.held().size() == 2 && b.held().size() == 2, a, b);
    Set<Integer> union = new TreeSet<>(a.held());
    union.addAll(b.held());
    out.put("split", Map.of("ok", ok, "disjoint", Collections.disjoint(a.held(), b.held()),
        "union", new ArrayList<>(union)));
    produce(topic, 100, 100, PARTS);
    ok = until(() -> a.got.size() + b.got.size() == 200, a, b);
    List<Integer> mixed = new ArrayList<>();
    boolean owners = true;
    for (int i = 100; i < a.got.size(); i++) {
      mixed.add(a.got.get(i)[1]);
      owners &= a.held().contains(a.got.get(i)[0]);
    }
    for (int[] r : b.got) {
      mixed.add(r[1]);
      owners &= b.held().contains(r[0]);
    }
    out.put("second", Map.of("ok", ok, "no_dup", new HashSet<>(mixed).size() == mixed.size(),
        "no_gap", new TreeSet<>(mixed).equals(range(100, 100)), "owners", owners));
    a.c.commitSync();
    b.c.commitSync();
    a.c.close();
    int before = b.got.size();
    ok = until(() -> b.held().size() == PARTS, b);
    produce(topic, 200, 40, PARTS);
    boolean ok2 = until(() -> b.got.size() >= before + 40, b);
    out.put("after_leave", Map.of("ok", ok && ok2,
        "exact", values(b.got, before).equals(range(200, 40))));
    b.c.commitSync();
    Set<TopicPartition> tps = new HashSet<>();
    for (int p = 0; p < PARTS; p++) tps.add(new TopicPartition(topic, p));
    Map<TopicPartition, OffsetAndMetadata> offs = b.c.committed(tps);
    List<List<Long>> committed = new ArrayList<>();
    for (int p = 0; p < PARTS; p++) {
      OffsetAndMetadata o = offs.get(new TopicPartition(topic, p));
      committed.add(List.of((long) p, o == null ? -1L : o.offset()));
    }
    out.put("committed", committed);
    b.c.close();

    // a broker-side regex subscription (KIP-848's SubscribedTopicRegex)
    group = prefix + "-jrg";
    produce(prefix + "-jrx-1", 0, 10, 2);
    Member r = member();
    r.c.subscribe(new SubscriptionPattern(prefix + "-jrx-.*"));
    ok = until(() -> r.got.size() == 10, r);
    try (Admin admin = Admin.create(ap)) {
      admin.createTopics(List.of(new NewTopic(prefix + "-jrx-2", 1, (short) 1))).all().get();
    }
    produce(prefix + "-jrx-2", 10, 5, 1);
    ok2 = until(() -> r.got.size() == 15, r);
    out.put("regex", Map.of("ok", ok && ok2, "exact", values(r.got, 0).equals(range(0, 15))));
    r.c.close();
    System.out.println(Json.write(out));
  }
}
