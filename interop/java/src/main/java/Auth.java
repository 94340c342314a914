// The SASL_SSL scenario through the Java client: produce one record and read it back with
// SCRAM or PLAIN, printing {"client": "java", "auth": "ok" | "authentication failed" | ...}
// (tests/oracle/test_sasl_oracle.py compares Kafka's and logmq's answers).
// Usage: Auth --bootstrap HOST:PORT --prefix P --sasl-mechanism M --user U --password P
//        --cafile CA.pem

import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Auth {
  public static void main(String[] args) throws Exception {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) a.put(args[i], args[i + 1]);
    String result;
    try {
      result = run(a);
    } catch (SaslAuthenticationException e) {
      result = "authentication failed";
    } catch (ExecutionException e) {
      result = e.getCause() instanceof SaslAuthenticationException
          ? "authentication failed" : "error " + e.getCause().getClass().getSimpleName();
    } catch (Exception e) {
      result = "error " + e.getClass().getSimpleName();
    }
    System.out.println(Json.write(Map.of("client", "java", "auth", result)));
    System.out.flush();
    System.exit(0);
  }

  static Properties props(Map<String, String> a) {
    Properties p = new Properties();
    String mech = a.get("--sasl-mechanism");
    String module = mech.equals("PLAIN")
        ? "org.apache.kafka.common.security.plain.PlainLoginModule"
        : "org.apache.kafka.common.security.scram.ScramLoginModule";
    p.put("bootstrap.servers", a.get("--bootstrap"));
    p.put("security.protocol", "SASL_SSL");
    p.put("sasl.mechanism", mech);
    p.put("sasl.jaas.config", module + " required username=\"" + a.get("--user")
        + "\" password=\"" + a.get("--password") + "\";");
    p.put("ssl.truststore.type", "PEM");
    p.put("ssl.truststore.location", a.get("--cafile"));
    p.put("request.timeout.ms", "15000");
    p.put("default.api.timeout.ms", "20000");
    p.put("max.block.ms", "20000");
    return p;
  }

  static String run(Map<String, String> a) throws Exception {
    String topic = a.get("--prefix") + "-java";
    Properties pp = props(a);
    pp.put("key.serializer", StringSerializer.class.getName());
    pp.put("value.serializer", StringSerializer.class.getName());
    try (Producer<String, String> p = new KafkaProducer<>(pp)) {
      p.send(new ProducerRecord<>(topic, "v")).get(30, TimeUnit.SECONDS);
    }
    Properties cp = props(a);
    cp.put("key.deserializer", StringDeserializer.class.getName());
    cp.put("value.deserializer", StringDeserializer.class.getName());
    cp.put("group.id", topic + "-g");
    cp.put("auto.offset.reset", "earliest");
    try (Consumer<String, String> c = new KafkaConsumer<>(cp)) {
      c.subscribe(List.of(topic));
      long deadline = System.currentTimeMillis() + 30_000;
      while (System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
          return r.value().equals("v") ? "ok" : "wrong record";
        }
      }
    }
    return "no record";
  }
}
