// The differential scenario through KafkaJS 2.2: the same fixed script as
// interop/python/common.py, printing one JSON object of observations.
// Usage: node scenario.js --bootstrap HOST:PORT --prefix P [--scenario auth ...: see auth()]
'use strict'

const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs')

const PARTITIONS = 2
const BASE_TS = 1700000000000
const TS_DELTAS = [0, 5000, 9000, 1000, 3000, 2000]
const BY_TIME = BASE_TS + 2500
const FUTURE = BASE_TS + 1e9
const CONFIG_KEYS = ['cleanup.policy', 'retention.ms', 'retention.bytes', 'segment.bytes',
  'max.message.bytes', 'message.timestamp.type', 'compression.type', 'min.insync.replicas',
  'min.compaction.lag.ms', 'delete.retention.ms', 'flush.messages', 'flush.ms']
const T = 15000

function arg (name) {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : undefined
}

const ops = {}
const traces = {}
async function op (name, fn) {
  try {
    ops[name] = await withTimeout(fn(), 2 * T)
  } catch (e) {
    ops[name] = { error: e.type || e.name || String(e) }
    traces[name] = String(e && e.stack)
  }
}

function withTimeout (p, ms) {
  let timer
  return Promise.race([p, new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { type: 'timeout' })), ms)
  })]).finally(() => clearTimeout(timer))
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  const bs = arg('--bootstrap')
  const topic = `${arg('--prefix')}-kjs`
  const group = `${topic}-g`
  const kafka = new Kafka({ clientId: 'logmq-interop', brokers: bs.split(','),
    logLevel: logLevel.NOTHING, requestTimeout: T, retry: { retries: 3 } })
  const admin = kafka.admin()
  await admin.connect()

  const create = async () => (await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], timeout: T })) ? 'ok' : 'exists'
  await op('create_topic', create)
  await op('create_topic_again', create)

  await op('metadata', async () => {
    let md
    for (const deadline = Date.now() + T; Date.now() < deadline; await sleep(200)) {
      md = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]
      if (md.partitions.length === PARTITIONS) break
    }
    return { partitions: md.partitions.map((p) => p.partitionId).sort(),
      leaders_known: md.partitions.every((p) => p.leader >= 0) }
  })

  await op('produce', async () => {
    const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await p.connect()
    const out = []
    try {
      for (let i = 0; i < TS_DELTAS.length; i++) {
        const [md] = await p.send({ topic, acks: -1, messages: [{ partition: i % PARTITIONS,
          key: `k${i}`, value: `v${i}`, headers: { h: `${i}`, n: 'x' },
          timestamp: String(BASE_TS + TS_DELTAS[i]) }] })
        out.push([md.partition, Number(md.baseOffset)])
      }
    } finally {
      await p.disconnect()
    }
    return out
  })

  const consumeAll = async (groupId, fromBeginning, subscribe) => {
    const c = kafka.consumer({ groupId, sessionTimeout: 10000, rebalanceTimeout: 10000 })
    await c.connect()
    const out = []
    await c.subscribe({ topic, fromBeginning })
    await c.run({ autoCommit: false, eachMessage: async ({ partition, message }) => {
      out.push([partition, Number(message.offset), String(message.key), String(message.value),
        Object.entries(message.headers).map(([k, v]) => [k, String(v)]),
        Number(message.timestamp)])
    } })
    for (const deadline = Date.now() + 2 * T; Date.now() < deadline && out.length < TS_DELTAS.length;) {
      await sleep(100)
    }
    return { c, out }
  }

  await op('consume', async () => {
    const { c, out } = await consumeAll(`${group}-reader`, true)
    await c.disconnect()
    return out.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  })

  const offsets = (list) => Object.fromEntries(list.map((o) => [String(o.partition), Number(o.offset)]))
  await op('offsets_earliest', async () => Object.fromEntries(
    (await admin.fetchTopicOffsets(topic)).map((o) => [String(o.partition), Number(o.low)])))
  await op('offsets_latest', async () => Object.fromEntries(
    (await admin.fetchTopicOffsets(topic)).map((o) => [String(o.partition), Number(o.high)])))
  await op('offsets_by_time', async () => offsets(await admin.fetchTopicOffsetsByTimestamp(topic, BY_TIME)))
  await op('offsets_by_time_future', async () => offsets(await admin.fetchTopicOffsetsByTimestamp(topic, FUTURE)))

  let member
  await op('group_consume_commit', async () => {
    const { c, out } = await consumeAll(group, true)
    member = c
    await c.commitOffsets([0, 1].map((p) => ({ topic, partition: p,
      offset: String(1 + Math.max(-1, ...out.filter((r) => r[0] === p).map((r) => r[1]))) })))
    const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] })
    return { consumed: out.length, committed: offsets(committed[0].partitions) }
  })

  await op('group_describe', async () => {
    const g = (await admin.describeGroups([group])).groups[0]
    return { state: g.state, protocol_type: g.protocolType, protocol: g.protocol,
      members: g.members.length, error_code: g.errorCode }
  })
  await op('group_list', async () => (await admin.listGroups()).groups.some((g) => g.groupId === group))
  if (member) await member.disconnect()

  const groupOffsets = async () => offsets((await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0].partitions)
  await op('group_offsets', groupOffsets)
  await op('group_reset', async () => {
    await admin.setOffsets({ groupId: group, topic, partitions: [0, 1].map((p) => ({ partition: p, offset: '1' })) })
    return { after: await groupOffsets() }
  })

  await op('describe_configs', async () => {
    const res = await admin.describeConfigs({ includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] })
    const entries = Object.fromEntries(res.resources[0].configEntries.map((e) => [e.configName, e.configValue]))
    return Object.fromEntries(CONFIG_KEYS.map((k) => [k, k in entries ? entries[k] : '<absent>']))
  })

  await op('delete_records', async () => {
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '2' }] })
    return { earliest_after: Object.fromEntries(
      (await admin.fetchTopicOffsets(topic)).map((o) => [String(o.partition), Number(o.low)])) }
  })

  await op('unknown_topic_metadata', async () => {
    await admin.fetchTopicMetadata({ topics: [`${topic}-nope`] })
    return 'ok'
  })
  await op('unknown_topic_offsets', async () => offsets(await admin.fetchTopicOffsets(`${topic}-nope`)))
  await op('create_partitions', async () => {
    await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })
    return 'ok'
  })
  await op('delete_group', async () => (await admin.deleteGroups([group])).map((r) => r.errorCode))

  await op('transactions', async () => {
    const p = kafka.producer({ transactionalId: `${topic}-tx`, idempotent: true, maxInFlightRequests: 1 })
    await p.connect()
    try {
      let tx = await p.transaction()
      await tx.send({ topic, messages: [{ partition: 1, value: 'committed' }] })
      await tx.commit()
      tx = await p.transaction()
      await tx.send({ topic, messages: [{ partition: 1, value: 'aborted' }] })
      await tx.abort()
    } finally {
      await p.disconnect()
    }
    const c = kafka.consumer({ groupId: `${group}-rc`, readUncommitted: false })
    await c.connect()
    const seen = []
    await c.subscribe({ topic, fromBeginning: true })
    await c.run({ eachMessage: async ({ partition, message }) => {
      if (partition === 1 && Number(message.offset) >= 3) seen.push(String(message.value))
    } })
    for (const deadline = Date.now() + 10000; Date.now() < deadline && seen.length < 1;) await sleep(100)
    await c.disconnect()
    return seen
  })

  await op('delete_topic', async () => {
    await admin.deleteTopics({ topics: [topic], timeout: T })
    for (const deadline = Date.now() + T; Date.now() < deadline; await sleep(200)) {
      const names = await admin.listTopics()
      if (!names.includes(topic)) return 'gone'
    }
    return 'still there'
  })
  await admin.disconnect()
}

// --scenario auth: one record produced and read back over SASL_SSL with --sasl-mechanism
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), --user, --password, --cafile; prints "ok" or the error
async function auth () {
  const fs = require('fs')
  const topic = `${arg('--prefix')}-kjs`
  const kafka = new Kafka({ clientId: 'logmq-interop', brokers: arg('--bootstrap').split(','),
    logLevel: logLevel.NOTHING, requestTimeout: T, retry: { retries: 1 },
    ssl: { ca: [fs.readFileSync(arg('--cafile'), 'utf-8')], servername: 'localhost' },
    sasl: { mechanism: arg('--sasl-mechanism').toLowerCase(), username: arg('--user'),
      password: arg('--password') } })
  const p = kafka.producer({ allowAutoTopicCreation: true })
  try {
    await p.connect()
  } catch (e) {
    return e.type === 'SASL_AUTHENTICATION_FAILED' || /uthentication failed/.test(String(e))
      ? 'authentication failed' : `error ${e.type || e.name}`
  }
  await p.send({ topic, messages: [{ value: 'v' }] })
  await p.disconnect()
  const c = kafka.consumer({ groupId: `${topic}-g` })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  const got = await withTimeout(new Promise((resolve) => {
    c.run({ eachMessage: async ({ message }) => resolve(message.value.toString()) })
  }), 2 * T)
  await c.disconnect()
  return got === 'v' ? 'ok' : 'wrong record'
}

if (arg('--scenario') === 'auth') {
  auth().then((r) => r, (e) => `error ${e.type || e.name || e}`).then((r) => {
    process.stdout.write(JSON.stringify({ client: 'kafkajs', auth: r }) + '\n')
    process.exit(0)
  })
} else main().catch((e) => { ops._fatal = { error: String(e) } }).finally(() => {
  process.stdout.write(JSON.stringify({ client: 'kafkajs', ops }) + '\n')
  for (const [k, v] of Object.entries(traces)) process.stderr.write(`--- ${k}\n${v}\n`)
  process.exit(0)
})
