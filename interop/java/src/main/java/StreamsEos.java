// A Kafka Streams (4.4.0) word count with processing.guarantee=exactly_once_v2: what a Streams
// application needs from a broker (internal changelog/repartition topics, transactions with
// offsets, require_stable offset fetches, read_committed reads, DeleteRecords on repartition
// topics, a classic consumer group). The input holds 50 committed lines and, between them, one
// ABORTED transaction of "ghost" words, which an exactly-once application must never count.
// Prints ONE JSON line: the read_committed view of the output (last count per word), the
// Streams state, the first error, and whether anything beyond the right counts was ever seen.
// Usage: java -cp target/classes:target/lib/* StreamsEos --bootstrap HOST:PORT --prefix P

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;
import org.apache.kafka.streams.*;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.*;

public class StreamsEos {
  // the Python test rebuilds the same lines (tests/oracle/test_streams_eos.py: lines())
  static final String[] VOCAB = {"apple", "banana", "cherry", "date", "elder", "fig", "grape",
      "honey"};
  static final int LINES = 50;
  static final long DEADLINE_MS = 120_000;

  static String line(int i) {
    StringBuilder sb = new StringBuilder();
    for (int j = 0; j < 1 + i % 4; j++) {
      if (j > 0) sb.append(' ');
      sb.append(VOCAB[(i * 5 + j * 3) % VOCAB.length]);
    }
    return sb.toString();
  }

  static Map<String, Long> expected() {
    Map<String, Long> m = new TreeMap<>();
    for (int i = 0; i < LINES; i++) {
      for (String w : line(i).split(" ")) m.merge(w, 1L, Long::sum);
    }
    return m;
  }

  static String first(Throwable t) {
    Throwable c = t;
    while (c.getCause() != null && c.getCause() != c) c = c.getCause();
    return t.getClass().getSimpleName() + ": " + t.getMessage()
        + (c != t ? " (cause " + c.getClass().getSimpleName() + ": " + c.getMessage() + ")" : "");
  }

  /** Input in three transactions: lines [0, 25) committed, ghosts aborted, [25, 50) committed. */
  static void produceInput(String bs, String topic, String txnId) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bs);
    p.put("transactional.id", txnId);
    p.put("key.serializer", StringSerializer.class.getName());
    p.put("value.serializer", StringSerializer.class.getName());
    try (KafkaProducer<String, String> prod = new KafkaProducer<>(p)) {
      prod.initTransactions();
      for (int[] range : new int[][] {{0, 25}, {-1, -1}, {25, LINES}}) {
        prod.beginTransaction();
        if (range[0] < 0) {
          for (int part = 0; part < 2; part++) {
            prod.send(new ProducerRecord<>(topic, part, "ghost-" + part, "ghost ghost apple"));
          }
          prod.flush();
          prod.abortTransaction();
          continue;
        }
        for (int i = range[0]; i < range[1]; i++) {
          prod.send(new ProducerRecord<>(topic, i % 2, "line-" + i, line(i)));
        }
        prod.commitTransaction();
      }
    }
  }

  public static void main(String[] args) throws Exception {
    String bs = null, prefix = null;
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].equals("--bootstrap")) bs = args[i + 1];
      if (args[i].equals("--prefix")) prefix = args[i + 1];
    }
    String in = prefix + "-in", out = prefix + "-out";
    long t0 = System.currentTimeMillis();
    Map<String, Object> res = new TreeMap<>();
    Map<String, Long> counts = new TreeMap<>();
    AtomicReference<String> error = new AtomicReference<>();
    boolean overCount = false, ghostSeen = false, decreased = false;
    String state = null;
    KafkaStreams streams = null;
    Path stateDir = Files.createTempDirectory("streams-eos-");
    Map<String, Long> want = expected();
    try {
      Properties ap = new Properties();
      ap.put("bootstrap.servers", bs);
      try (Admin admin = Admin.create(ap)) {
        admin.createTopics(List.of(new NewTopic(in, 2, (short) 1),
            new NewTopic(out, 1, (short) 1))).all().get();
      }
      produceInput(bs, in, prefix + "-input-txn");

      StreamsBuilder b = new StreamsBuilder();
      b.stream(in, Consumed.with(Serdes.String(), Serdes.String()))
          .flatMapValues(v -> Arrays.asList(v.split(" ")))
          .groupBy((k, w) -> w, Grouped.with("words", Serdes.String(), Serdes.String()))
          .count(Materialized.as("counts"))
          .toStream()
          .to(out, Produced.with(Serdes.String(), Serdes.Long()));
      Properties sp = new Properties();
      sp.put(StreamsConfig.APPLICATION_ID_CONFIG, prefix + "-app");
      sp.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bs);
      sp.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
      sp.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
      sp.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
      sp.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
      sp.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
      sp.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
      streams = new KafkaStreams(b.build(), sp);
      streams.setUncaughtExceptionHandler(e -> {
        error.compareAndSet(null, first(e));
        return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
      });
      streams.start();

      Properties cp = new Properties();
      cp.put("bootstrap.servers", bs);
      cp.put("isolation.level", "read_committed");
      cp.put("enable.auto.commit", "false");
      cp.put("key.deserializer", StringDeserializer.class.getName());
      cp.put("value.deserializer", LongDeserializer.class.getName());
      try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
        TopicPartition tp = new TopicPartition(out, 0);
        c.assign(List.of(tp));
        c.seekToBeginning(List.of(tp));
        while (!counts.equals(want) && error.get() == null
            && System.currentTimeMillis() - t0 < DEADLINE_MS) {
          for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
            Long before = counts.put(r.key(), r.value());
            ghostSeen |= r.key().equals("ghost");
            overCount |= r.value() > want.getOrDefault(r.key(), 0L);
            decreased |= before != null && r.value() < before;
          }
          KafkaStreams.State s = streams.state();
          if (s == KafkaStreams.State.ERROR || s == KafkaStreams.State.NOT_RUNNING) break;
        }
      }
      state = streams.state().toString();
    } catch (Exception e) {
      error.compareAndSet(null, first(e));
    } finally {
      if (streams != null) {
        if (state == null) state = streams.state().toString();
        streams.close(Duration.ofSeconds(20));
        streams.cleanUp();
      }
    }
    if (error.get() == null && !counts.equals(want)) {
      error.set("deadline: the read_committed output did not reach the expected counts in "
          + DEADLINE_MS + " ms");
    }
    res.put("counts", counts);
    res.put("state", state);
    res.put("error", error.get());
    res.put("ghost_seen", ghostSeen);
    res.put("over_count", overCount);
    res.put("decreased", decreased);
    res.put("elapsed_ms", System.currentTimeMillis() - t0);
    System.out.println(Json.write(res));
    System.out.flush();
    System.exit(0);
  }
}
