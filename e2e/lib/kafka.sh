# shellcheck shell=bash
# Apache Kafka: a single-node KRaft broker+controller, jars resolved from Maven Central.
# Sourced by e2e/stack.

kafka_install() {
  [ -f "$KAFKA_DIR/.complete" ] && return 0
  log "kafka: resolving kafka_2.13 $KAFKA_VERSION from Maven Central"
  rm -rf "$KAFKA_DIR"; mkdir -p "$KAFKA_DIR"
  mvn -B -q -Dstyle.color=never -f "$E2E_DIR/kafka/pom.xml" -Dmaven.repo.local="$CACHE_DIR/m2" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/lib"
  touch "$KAFKA_DIR/.complete"
}

# A CA and a broker certificate for 127.0.0.1/localhost, for the TLS listener (PEM key store).
kafka_pki() {
  local pki="$RUN_DIR/kafka/pki"
  [ -f "$pki/.complete" ] && return 0
  rm -rf "$pki"; mkdir -p "$pki"
  (
    cd "$pki" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj /CN=panopticon-e2e-kafka-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > broker.ext
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -out broker.crt -extfile broker.ext 2>/dev/null
    # Kafka's PEM key store: the PKCS#8 key followed by the certificate chain.
    openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8
    cat broker.pk8 broker.crt ca.crt > broker-keystore.pem
  )
  touch "$pki/.complete"
}

kafka_start() {
  local dir="$RUN_DIR/kafka"
  mkdir -p "$dir"
  kafka_pki
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT,SASL_SSL://127.0.0.1:$KAFKA_TLS_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT,SASL_SSL://127.0.0.1:$KAFKA_TLS_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
# TLS (with SCRAM on top) for the clients' TLS tests; the CA is exported by `e2e/stack env`.
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/pki/broker-keystore.pem
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# A SASL listener for the clients' SASL tests: SCRAM users are created at format time,
# PLAIN users are listed here.
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  cat > "$dir/log4j.properties" <<PROPS
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
PROPS
  local java_opts="-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j.configuration=file:$dir/log4j.properties"
  if [ ! -f "$dir/data/meta.properties" ]; then
    # shellcheck disable=SC2086
    java $java_opts -cp "$KAFKA_DIR/lib/*" kafka.tools.StorageTool format \
      -t "$(java $java_opts -cp "$KAFKA_DIR/lib/*" kafka.tools.StorageTool random-uuid)" \
      -c "$dir/server.properties" \
      --add-scram "SCRAM-SHA-256=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
      --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
      >> "$LOG_DIR/kafka.log" 2>&1
  fi
  # shellcheck disable=SC2086
  spawn kafka java $java_opts -cp "$KAFKA_DIR/lib/*" kafka.Kafka "$dir/server.properties"
}

kafka_ready() {
  port_open "$KAFKA_PORT" && port_open "$KAFKA_SASL_PORT" && port_open "$KAFKA_TLS_PORT" &&
    grep -q 'Kafka Server started' "$LOG_DIR/kafka.log"
}

kafka_version() { echo "Apache Kafka $KAFKA_VERSION (KRaft, $(java -version 2>&1 | head -1))"; }

kafka_env() {
  echo "export PANOPTICON_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
  echo "export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"   # what the components read
  # The SASL listener and its test user (PLAIN and SCRAM-SHA-256/512); a local test secret.
  echo "export PANOPTICON_KAFKA_SASL_BROKERS=127.0.0.1:$KAFKA_SASL_PORT"
  echo "export PANOPTICON_KAFKA_SASL_USER=$KAFKA_SASL_USER"
  echo "export PANOPTICON_KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD"
  # The TLS listener (SASL_SSL, SCRAM-SHA-512, same user) and the CA that signed it.
  echo "export PANOPTICON_KAFKA_TLS_BROKERS=127.0.0.1:$KAFKA_TLS_PORT"
  echo "export PANOPTICON_KAFKA_TLS_CA=$RUN_DIR/kafka/pki/ca.crt"
}
