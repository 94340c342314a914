// A Kafka Streams (4.4.0) word count with processing.guarantee=exactly_once_v2: what a Streams
// application needs from a broker (internal changelog/repartition topics, transactions with
// offsets, require_stable offset fetches, read_committed reads, DeleteRecords on repartition
// topics, a classic consumer group). The input holds 50 committed lines and, before them, one
// ABORTED transaction of "ghost" words, which an exactly-once application must never count.
// Three instances in turn: the first counts half the lines and closes; a "zombie" (a child
// JVM, empty state dir) counts the rest into a transaction and is killed before committing;
// a restart in the zombie's state dir fences it and must end on the exact counts.
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
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.*;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.streams.*;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.*;

public class StreamsEos {
  // the Python test rebuilds the same lines (tests/oracle/test_streams_eos.py: lines())
  static final String[] VOCAB = {"apple", "banana", "cherry", "date", "elder", "fig", "grape",
      "honey"};
  static final int LINES = 50;
  static final long DEADLINE_MS = 150_000;

  static String line(int i) {
    StringBuilder sb = new StringBuilder();
    for (int j = 0; j < 1 + i % 4; j++) {
      if (j > 0) sb.append(' ');
      sb.append(VOCAB[(i * 5 + j * 3) % VOCAB.length]);
    }
    return sb.toString();
  }

  static Map<String, Long> expected(int lines) {
    Map<String, Long> m = new TreeMap<>();
    for (int i = 0; i < lines; i++) {
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

  static KafkaProducer<String, String> producer(String bs, String txnId) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bs);
    p.put("transactional.id", txnId);
    p.put("key.serializer", StringSerializer.class.getName());
    p.put("value.serializer", StringSerializer.class.getName());
    KafkaProducer<String, String> prod = new KafkaProducer<>(p);
    prod.initTransactions();
    return prod;
  }

  /** Lines [from, to) in one committed transaction; with ghosts, an aborted one before it. */
  static void produceInput(KafkaProducer<String, String> prod, String topic, int from, int to,
      boolean ghosts) {
    if (ghosts) {
      prod.beginTransaction();
      for (int part = 0; part < 2; part++) {
        prod.send(new ProducerRecord<>(topic, part, "ghost-" + part, "ghost ghost apple"));
      }
      prod.flush();
      prod.abortTransaction();
    }
    prod.beginTransaction();
    for (int i = from; i < to; i++) {
      prod.send(new ProducerRecord<>(topic, i % 2, "line-" + i, line(i)));
    }
    prod.commitTransaction();
  }

  static final class Run {
    final Map<String, Long> counts = new TreeMap<>();
    final AtomicReference<String> error = new AtomicReference<>();
    boolean overCount, ghostSeen, decreased;
  }

  static KafkaStreams start(String bs, String prefix, Path stateDir, Run run,
      Map<String, Object> overrides) {
    StreamsBuilder b = new StreamsBuilder();
    b.stream(prefix + "-in", Consumed.with(Serdes.String(), Serdes.String()))
        .flatMapValues(v -> Arrays.asList(v.split(" ")))
        .groupBy((k, w) -> w, Grouped.with("words", Serdes.String(), Serdes.String()))
        .count(Materialized.as("counts"))
        .toStream()
        .to(prefix + "-out", Produced.with(Serdes.String(), Serdes.Long()));
    Properties sp = new Properties();
    sp.put(StreamsConfig.APPLICATION_ID_CONFIG, prefix + "-app");
    sp.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bs);
    sp.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    sp.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    sp.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
    sp.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 200);
    sp.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    sp.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    sp.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // a killed member leaves the group after 6 s, not the default 45 s
    sp.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
    sp.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
    sp.putAll(overrides);
    KafkaStreams streams = new KafkaStreams(b.build(), sp);
    streams.setUncaughtExceptionHandler(e -> {
      run.error.compareAndSet(null, first(e));
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    streams.start();
    return streams;
  }

  /** Reads the output read_committed until it shows {@code want} (or an error/deadline). */
  static void await(KafkaConsumer<String, Long> c, KafkaStreams streams, Run run,
      Map<String, Long> want, Map<String, Long> last, long end) {
    while (!run.counts.equals(want) && run.error.get() == null
        && System.currentTimeMillis() < end) {
      for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
        Long before = run.counts.put(r.key(), r.value());
        run.ghostSeen |= r.key().equals("ghost");
        run.overCount |= r.value() > last.getOrDefault(r.key(), 0L);
        run.decreased |= before != null && r.value() < before;
      }
      KafkaStreams.State s = streams.state();
      if (s == KafkaStreams.State.ERROR || s == KafkaStreams.State.NOT_RUNNING) break;
    }
  }

  /** Partitions and cleanup.policy of the application's internal topics, by name. */
  static Map<String, Object> internalTopics(Admin admin, String prefix) throws Exception {
    Map<String, Object> out = new TreeMap<>();
    List<String> names = new ArrayList<>();
    for (String n : admin.listTopics().names().get()) {
      if (n.startsWith(prefix + "-app-")) names.add(n);
    }
    Map<String, TopicDescription> desc = admin.describeTopics(names).allTopicNames().get();
    List<ConfigResource> rs = new ArrayList<>();
    for (String n : names) rs.add(new ConfigResource(ConfigResource.Type.TOPIC, n));
    Map<ConfigResource, Config> cfgs = admin.describeConfigs(rs).all().get();
    for (String n : names) {
      Config cfg = cfgs.get(new ConfigResource(ConfigResource.Type.TOPIC, n));
      ConfigEntry policy = cfg.get("cleanup.policy");
      out.put(n, Map.of("partitions", desc.get(n).partitions().size(),
          "cleanup.policy", policy == null ? "?" : policy.value()));
    }
    return out;
  }

  /** Whether Streams' DeleteRecords moved every repartition partition's start past 0. */
  static boolean purged(Admin admin, String topic, long end) throws Exception {
    Map<TopicPartition, OffsetSpec> q = new HashMap<>();
    for (int p = 0; p < 2; p++) q.put(new TopicPartition(topic, p), OffsetSpec.earliest());
    while (System.currentTimeMillis() < end) {
      boolean all = true;
      for (var e : admin.listOffsets(q).all().get().values()) all &= e.offset() > 0;
      if (all) return true;
      Thread.sleep(200);
    }
    return false;
  }

  /** How many records a read_uncommitted reader sees past {@code from} (the zombie's open
   * transaction): waits for the first, then gathers for another second. */
  static int pending(String bs, Map<TopicPartition, Long> from, long end) {
    Properties cp = new Properties();
    cp.put("bootstrap.servers", bs);
    cp.put("isolation.level", "read_uncommitted");
    cp.put("enable.auto.commit", "false");
    cp.put("key.deserializer", ByteArrayDeserializer.class.getName());
    cp.put("value.deserializer", ByteArrayDeserializer.class.getName());
    int seen = 0;
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp)) {
      c.assign(from.keySet());
      from.forEach(c::seek);
      while (System.currentTimeMillis() < end) {
        seen += c.poll(Duration.ofMillis(200)).count();
        if (seen > 0) end = Math.min(end, System.currentTimeMillis() + 1000);
      }
    }
    return seen;
  }

  /**
   * The zombie: an instance that processes into a transaction it never commits (commit
   * interval 60 s, transaction timeout 120 s, no record cache, so its output is sent at once) until the parent kills it.
   */
  static void child(String bs, String prefix, Path stateDir) throws Exception {
    Run run = new Run();
    KafkaStreams s = start(bs, prefix, stateDir, run, Map.of(
        StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 60_000,
        StreamsConfig.producerPrefix(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG), 120_000,
        StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0));
    long end = System.currentTimeMillis() + DEADLINE_MS;  // bounded: killed long before this
    String last = "";
    while (System.currentTimeMillis() < end) {
      String now = s.state() + " " + run.error.get();
      if (!now.equals(last)) System.err.println("zombie: " + now);
      last = now;
      Thread.sleep(100);
    }
    System.exit(3);
  }

  /** Spawns the zombie in its own JVM (its stderr beside its state dir, as DIR.err). */
  static Process zombie(String bs, String prefix, Path stateDir) throws Exception {
    String java = ProcessHandle.current().info().command().orElse("java");
    Process proc = new ProcessBuilder(java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp",
        System.getProperty("java.class.path"), "StreamsEos", "--child", stateDir.toString(),
        "--bootstrap", bs, "--prefix", prefix)
        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(stateDir.resolveSibling(stateDir.getFileName() + ".err").toFile()).start();
    return proc;
  }

  public static void main(String[] args) throws Exception {
    String bs = null, prefix = null, childDir = null;
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].equals("--bootstrap")) bs = args[i + 1];
      if (args[i].equals("--prefix")) prefix = args[i + 1];
      if (args[i].equals("--child")) childDir = args[i + 1];
    }
    if (childDir != null) {
      child(bs, prefix, Path.of(childDir));
      return;
    }
    String in = prefix + "-in", out = prefix + "-out";
    long t0 = System.currentTimeMillis(), end = t0 + DEADLINE_MS;
    Map<String, Object> res = new TreeMap<>();
    Run run = new Run();
    String state = null;
    KafkaStreams streams = null;
    Map<String, Long> half = expected(LINES / 2), want = expected(LINES);
    Properties ap = new Properties();
    ap.put("bootstrap.servers", bs);
    Properties cp = new Properties();
    cp.put("bootstrap.servers", bs);
    cp.put("isolation.level", "read_committed");
    cp.put("enable.auto.commit", "false");
    cp.put("key.deserializer", StringDeserializer.class.getName());
    cp.put("value.deserializer", LongDeserializer.class.getName());
    try (Admin admin = Admin.create(ap)) {
      admin.createTopics(List.of(new NewTopic(in, 2, (short) 1),
          new NewTopic(out, 1, (short) 1))).all().get();
      TopicPartition tp = new TopicPartition(out, 0);
      try (KafkaProducer<String, String> prod = producer(bs, prefix + "-input-txn");
           KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
        c.assign(List.of(tp));
        c.seekToBeginning(List.of(tp));
        // phase 1: the first half (after an aborted ghost transaction), then a clean close
        produceInput(prod, in, 0, LINES / 2, true);
        streams = start(bs, prefix, Files.createTempDirectory("streams-eos-1-"), run, Map.of());
        await(c, streams, run, half, want, end);
        res.put("phase1_counts", new TreeMap<>(run.counts));
        res.put("phase1_ms", System.currentTimeMillis() - t0);
        // leave the group now: the next instance should not wait out this one's session
        streams.close(CloseOptions.groupMembershipOperation(
            CloseOptions.GroupMembershipOperation.LEAVE_GROUP).withTimeout(Duration.ofSeconds(20)));
        streams = null;
        // phase 2: a zombie (another JVM, EMPTY state dir, so it restores the counts from the
        // changelog) counts the second half into a transaction that stays open; it is killed
        if (run.error.get() == null) {
          // the zombie writes into the repartition topic; its own read_committed reads of it
          // (and so the counts and the output) wait for a commit that never comes
          Map<TopicPartition, OffsetSpec> q = new HashMap<>();
          for (int p = 0; p < 2; p++) {
            q.put(new TopicPartition(prefix + "-app-words-repartition", p), OffsetSpec.latest());
          }
          Map<TopicPartition, Long> from = new HashMap<>();
          admin.listOffsets(q).all().get().forEach((k, v) -> from.put(k, v.offset()));
          produceInput(prod, in, LINES / 2, LINES, false);
          Path dir = Files.createTempDirectory("streams-eos-2-");
          Process z = zombie(bs, prefix, dir);
          int zombieRecords;
          try {
            zombieRecords = pending(bs, from, Math.min(end, System.currentTimeMillis() + 60_000));
          } finally {
            z.destroyForcibly();
            z.waitFor();
          }
          res.put("zombie_pending_seen", zombieRecords > 0);
          if (zombieRecords == 0) {
            Path err = dir.resolveSibling(dir.getFileName() + ".err");
            res.put("zombie_stderr", Files.exists(err) ? Files.readString(err) : "(none)");
          }
          // phase 3: a restart in the zombie's state dir (same process id, so the same
          // transactional ids: InitProducerId fences the zombie and aborts its transaction)
          // restores the committed counts and counts the second half again, exactly once
          streams = start(bs, prefix, dir, run, Map.of());
          await(c, streams, run, want, want, end);
          state = streams.state().toString();
          res.put("internal_topics", internalTopics(admin, prefix));
          res.put("repartition_purged",
              purged(admin, prefix + "-app-words-repartition", System.currentTimeMillis() + 15_000));
        }
      }
    } catch (Exception e) {
      run.error.compareAndSet(null, first(e));
    } finally {
      if (streams != null) {
        if (state == null) state = streams.state().toString();
        streams.close(Duration.ofSeconds(20));
      }
    }
    if (run.error.get() == null && !run.counts.equals(want)) {
      run.error.set("deadline: the read_committed output did not reach the expected counts in "
          + DEADLINE_MS + " ms");
    }
    res.put("counts", run.counts);
    res.put("state", state);
    res.put("error", run.error.get());
    res.put("ghost_seen", run.ghostSeen);
    res.put("over_count", run.overCount);
    res.put("decreased", run.decreased);
    res.put("elapsed_ms", System.currentTimeMillis() - t0);
    System.out.println(Json.write(res));
    System.out.flush();
    System.exit(0);
  }
}
