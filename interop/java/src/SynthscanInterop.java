import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SchemaLocation;
import com.networknt.schema.SchemaValidatorsConfig;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import io.cloudevents.CloudEvent;
import io.cloudevents.CloudEventData;
import io.cloudevents.core.builder.CloudEventBuilder;
import io.cloudevents.core.message.Encoding;
import io.cloudevents.jackson.JsonFormat;
import io.cloudevents.kafka.CloudEventDeserializer;
import io.cloudevents.kafka.CloudEventSerializer;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A subscriber and producer written against the CloudEvents Java SDK (Kafka binding), the
 * Apache Kafka Java client and the networknt JSON Schema validator: code we did not write, used
 * by tests/interop to check synthscan's event formats from another ecosystem.
 *
 * <pre>
 * produce  BOOTSTRAP TOPIC SPECS.jsonl        one CloudEvent per line, via CloudEventSerializer
 * consume  BOOTSTRAP MAX_MS TOPIC:COUNT...    CloudEventDeserializer; one JSON line per record
 * watch    BOOTSTRAP TOPIC MAX_MS             read_committed, from the start, until stdin closes
 * validate SCHEMA.json=DOCS.jsonl...          JSON Schema 2020-12; one JSON line per document
 * </pre>
 */
public final class SynthscanInterop {
  private static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] args) throws Exception {
    switch (args.length > 0 ? args[0] : "") {
      case "produce" -> produce(args[1], args[2], Path.of(args[3]));
      case "consume" -> {
        for (int i = 3; i < args.length; i++) {
          String[] tc = args[i].split(":", 2);
          consume(args[1], tc[0], Integer.parseInt(tc[1]), Long.parseLong(args[2]));
        }
      }
      case "watch" -> watch(args[1], args[2], Long.parseLong(args[3]));
      case "validate" -> {
        for (int i = 1; i < args.length; i++) {
          String[] pair = args[i].split("=", 2);
          validate(Path.of(pair[0]), Path.of(pair[1]));
        }
      }
      default -> {
        System.err.println("usage: produce|consume|watch|validate ...");
        System.exit(2);
      }
    }
  }

  /** Spec fields: mode (binary|structured), key, id, source, type, subject, time,
   * datacontenttype, data_json (any JSON, sent as its bytes) or data_base64, extensions. */
  static void produce(String bootstrap, String topic, Path specs) throws Exception {
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, CloudEventSerializer.class);
    props.put(CloudEventSerializer.EVENT_FORMAT_CONFIG, JsonFormat.CONTENT_TYPE);
    Properties binary = (Properties) props.clone();
    binary.put(CloudEventSerializer.ENCODING_CONFIG, Encoding.BINARY);
    Properties structured = (Properties) props.clone();
    structured.put(CloudEventSerializer.ENCODING_CONFIG, Encoding.STRUCTURED);
    try (KafkaProducer<String, CloudEvent> bin = new KafkaProducer<>(binary);
        KafkaProducer<String, CloudEvent> str = new KafkaProducer<>(structured)) {
      for (String line : Files.readAllLines(specs, StandardCharsets.UTF_8)) {
        if (line.isBlank()) continue;
        JsonNode spec = JSON.readTree(line);
        CloudEvent event = build(spec);
        String key = spec.hasNonNull("key") ? spec.get("key").asText() : null;
        KafkaProducer<String, CloudEvent> producer =
            "structured".equals(spec.path("mode").asText()) ? str : bin;
        producer.send(new ProducerRecord<>(topic, key, event)).get();
      }
    }
  }

  static CloudEvent build(JsonNode spec) throws Exception {
    CloudEventBuilder b =
        CloudEventBuilder.v1()
            .withId(spec.get("id").asText())
            .withSource(URI.create(spec.get("source").asText()))
            .withType(spec.get("type").asText());
    if (spec.hasNonNull("subject")) b.withSubject(spec.get("subject").asText());
    if (spec.hasNonNull("time")) b.withTime(OffsetDateTime.parse(spec.get("time").asText()));
    if (spec.hasNonNull("datacontenttype")) b.withDataContentType(spec.get("datacontenttype").asText());
    if (spec.has("data_json")) b.withData(JSON.writeValueAsBytes(spec.get("data_json")));
    if (spec.has("data_base64")) b.withData(Base64.getDecoder().decode(spec.get("data_base64").asText()));
    Iterator<Map.Entry<String, JsonNode>> ext = spec.path("extensions").fields();
    while (ext.hasNext()) {
      Map.Entry<String, JsonNode> e = ext.next();
      if (e.getValue().isNumber()) b.withExtension(e.getKey(), e.getValue().numberValue());
      else b.withExtension(e.getKey(), e.getValue().asText());
    }
    return b.build();
  }

  static KafkaConsumer<String, CloudEvent> consumer(String bootstrap, String isolation) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, CloudEventDeserializer.class);
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
    return new KafkaConsumer<>(props);
  }

  static void assignFromStart(KafkaConsumer<String, CloudEvent> consumer, String topic) {
    List<TopicPartition> parts = new ArrayList<>();
    consumer.partitionsFor(topic, Duration.ofSeconds(30))
        .forEach(p -> parts.add(new TopicPartition(topic, p.partition())));
    consumer.assign(parts);
    consumer.seekToBeginning(parts);
  }

  /** One JSON object per record: what a subscriber using the SDK sees. */
  static ObjectNode describe(ConsumerRecord<String, CloudEvent> rec) {
    CloudEvent e = rec.value();
    ObjectNode out = JSON.createObjectNode();
    out.put("topic", rec.topic());
    out.put("partition", rec.partition());
    out.put("offset", rec.offset());
    out.put("key", rec.key());
    ObjectNode headers = out.putObject("headers");
    for (Header h : rec.headers()) headers.put(h.key(), new String(h.value(), StandardCharsets.UTF_8));
    out.put("specversion", e.getSpecVersion().toString());
    out.put("id", e.getId());
    out.put("source", e.getSource().toString());
    out.put("type", e.getType());
    out.put("subject", e.getSubject());
    out.put("time", e.getTime() == null ? null : e.getTime().toString());
    out.put("datacontenttype", e.getDataContentType());
    ObjectNode ext = out.putObject("extensions");
    for (String name : e.getExtensionNames()) ext.put(name, String.valueOf(e.getExtension(name)));
    CloudEventData data = e.getData();
    out.put("data_base64", data == null ? null : Base64.getEncoder().encodeToString(data.toBytes()));
    return out;
  }

  static void consume(String bootstrap, String topic, int count, long maxMs) throws Exception {
    long deadline = System.currentTimeMillis() + maxMs;
    int seen = 0;
    try (KafkaConsumer<String, CloudEvent> consumer = consumer(bootstrap, "read_committed")) {
      assignFromStart(consumer, topic);
      while (seen < count && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, CloudEvent> rec : consumer.poll(Duration.ofMillis(200))) {
          System.out.println(JSON.writeValueAsString(describe(rec)));
          seen++;
        }
      }
    }
    System.out.flush();
  }

  /** A read_committed subscriber: prints every record it is given until stdin closes. */
  static void watch(String bootstrap, String topic, long maxMs) throws Exception {
    AtomicBoolean stop = new AtomicBoolean(false);
    Thread stdin =
        new Thread(
            () -> {
              try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in))) {
                while (in.readLine() != null) {}
              } catch (Exception ignored) {
                // stdin closed or broken: stop either way
              }
              stop.set(true);
            });
    stdin.setDaemon(true);
    stdin.start();
    long deadline = System.currentTimeMillis() + maxMs;
    try (KafkaConsumer<String, CloudEvent> consumer = consumer(bootstrap, "read_committed")) {
      assignFromStart(consumer, topic);
      System.out.println("{\"ready\": true}");
      System.out.flush();
      while (!stop.get() && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, CloudEvent> rec : consumer.poll(Duration.ofMillis(100))) {
          ObjectNode out = describe(rec);
          out.put("event_id", JSON.readTree(rec.value().getData().toBytes()).path("event_id").asText());
          out.remove("data_base64");
          System.out.println(JSON.writeValueAsString(out));
          System.out.flush();
        }
      }
    }
  }

  /** Validates each line of DOCS.jsonl against SCHEMA (2020-12, format assertions on); the
   * schema itself is first checked against the 2020-12 meta-schema (index -1). */
  static void validate(Path schemaFile, Path docs) throws Exception {
    JsonSchemaFactory factory = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012);
    SchemaValidatorsConfig config =
        SchemaValidatorsConfig.builder().formatAssertionsEnabled(true).build();
    JsonNode schemaNode = JSON.readTree(schemaFile.toFile());
    JsonSchema meta =
        factory.getSchema(SchemaLocation.of("https://json-schema.org/draft/2020-12/schema"), config);
    print(schemaFile, -1, meta.validate(schemaNode));
    JsonSchema schema = factory.getSchema(schemaNode, config);
    int index = 0;
    for (String line : Files.readAllLines(docs, StandardCharsets.UTF_8)) {
      if (line.isBlank()) continue;
      print(schemaFile, index++, schema.validate(JSON.readTree(line)));
    }
    System.out.flush();
  }

  static void print(Path schema, int index, Set<ValidationMessage> errors) throws Exception {
    ObjectNode out = JSON.createObjectNode();
    out.put("schema", schema.toString());
    out.put("index", index);
    ArrayNode list = out.putArray("errors");
    errors.forEach(m -> list.add(m.toString()));
    System.out.println(JSON.writeValueAsString(out));
  }
}
