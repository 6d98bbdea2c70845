// weft's js-libp2p interop peer.
//
// Contract (shared with the go and rust peers, see interop-tests/README.md):
//   node peer.mjs listen --security noise|tls [--ip 127.0.0.1] [--port 0] [--transport tcp|quic]
//   node peer.mjs dial MULTIADDR --security noise|tls [--echo-bytes N] [--timeout-secs S]
//   node peer.mjs transport-interop   (libp2p/test-plans' contract: env vars + redis)
// TCP (Noise or TLS, yamux) and QUIC v1 (@chainsafe/libp2p-quic: libp2p TLS and
// QUIC's own streams); a dial follows its address. stdout carries only the contract's output;
// logs go to stderr.
import './polyfill.mjs'

import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { quic } from '@chainsafe/libp2p-quic'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { tls } from '@libp2p/tls'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { createClient } from 'redis'

const AGENT_VERSION = 'js-libp2p-interop-peer'
const ECHO_PROTOCOL = '/echo/1.0.0'
const ECHO_CHUNK = 64 * 1024
const PING_PROTOCOL = '/ipfs/ping/1.0.0'
const PING_SIZE = 32
const LISTENER_ADDR_KEY = 'listenerAddr'

function usage () {
  process.stderr.write('usage:\n' +
    '  peer.mjs listen --security noise|tls [--ip 127.0.0.1] [--port 0] [--transport tcp|quic]\n' +
    '  peer.mjs dial MULTIADDR --security noise|tls [--echo-bytes 1048576] [--timeout-secs 30]\n')
  process.exit(2)
}

function encrypter (security) {
  if (security === 'noise') return noise()
  if (security === 'tls') return tls()
  throw new Error(`unknown --security ${JSON.stringify(security)} (want noise or tls)`)
}

/** The listen address for `--transport` ("tcp" or "quic"). */
function listenAddr (transport, family, ip, port) {
  if (transport === 'tcp') return `/${family}/${ip}/tcp/${port}`
  if (transport === 'quic') return `/${family}/${ip}/udp/${port}/quic-v1`
  throw new Error(`unknown --transport ${JSON.stringify(transport)} (want tcp or quic)`)
}

/** Whether `ma` is an address of `transport` ("tcp" or "quic"). */
function isTransport (ma, transport) {
  return ma.toString().includes(transport === 'quic' ? '/quic-v1' : '/tcp/')
}

async function newNode (security, listen) {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp(), quic()],
    connectionEncrypters: [encrypter(security)],
    streamMuxers: [yamux()],
    nodeInfo: { userAgent: AGENT_VERSION },
    services: {
      identify: identify(),
      ping: ping()
    }
  })
}

/** Echo every byte until the remote half-closes, then close the write side. */
async function echoHandler (stream) {
  try {
    for await (const chunk of stream) {
      if (!stream.send(chunk)) {
        await stream.onDrain()
      }
    }
    await stream.close()
  } catch (err) {
    process.stderr.write(`echo stream failed: ${err?.stack ?? err}\n`)
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}

function writeStdout (line) {
  return new Promise((resolve) => process.stdout.write(line + '\n', () => resolve()))
}

async function listen (argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      security: { type: 'string' },
      ip: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      transport: { type: 'string', default: 'tcp' }
    },
    allowPositionals: true
  })
  if (positionals.length !== 0) throw new Error(`unexpected arguments: ${positionals.join(' ')}`)
  const transport = values.transport
  const node = await newNode(values.security, [listenAddr(transport, 'ip4', values.ip, values.port)])
  await node.handle(ECHO_PROTOCOL, echoHandler)
  const addr = node.getMultiaddrs().find((ma) => isTransport(ma, transport))
  if (addr == null) throw new Error(`no ${transport} listen address`)
  let line = addr.toString()
  if (!line.includes('/p2p/')) line += `/p2p/${node.peerId.toString()}`
  await writeStdout(line)
  const stop = async () => {
    await node.stop().catch(() => {})
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

/**
 * One ping on /ipfs/ping/1.0.0, timed with the monotonic sub-millisecond clock
 * (@libp2p/ping reports whole milliseconds). Checks the echoed payload.
 */
async function pingOnce (node, peerId, signal) {
  const stream = await node.dialProtocol(peerId, PING_PROTOCOL, { signal })
  try {
    const payload = randomBytes(PING_SIZE)
    const chunks = []
    let got = 0
    const pong = new Promise((resolve, reject) => {
      stream.addEventListener('message', (evt) => {
        const bytes = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
        chunks.push(bytes)
        got += bytes.byteLength
        if (got >= PING_SIZE) resolve(performance.now())
      })
      stream.addEventListener('close', () => reject(new Error('ping stream closed before the pong')))
      signal.addEventListener('abort', () => reject(new Error('ping timed out')))
    })
    const start = performance.now()
    stream.send(payload)
    const end = await pong
    if (!Buffer.concat(chunks).subarray(0, PING_SIZE).equals(payload)) throw new Error('wrong ping payload echoed')
    return end - start
  } finally {
    await stream.close({ signal }).catch(() => {})
  }
}

/** Send `n` random bytes on /echo/1.0.0 while reading, half-close, read to EOF, verify. */
async function echo (node, peerId, n, signal) {
  const stream = await node.dialProtocol(peerId, ECHO_PROTOCOL, { signal })
  // Reading is not abortable by itself: abort the stream when time is up.
  signal.addEventListener('abort', () => stream.abort(new Error('echo timed out')))
  const payload = randomBytes(n)
  const writer = (async () => {
    for (let offset = 0; offset < n; offset += ECHO_CHUNK) {
      if (!stream.send(payload.subarray(offset, Math.min(n, offset + ECHO_CHUNK)))) {
        await stream.onDrain({ signal })
      }
    }
    await stream.close({ signal })
  })()
  const received = Buffer.alloc(n)
  let got = 0
  for await (const chunk of stream) {
    const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray()
    if (got + bytes.byteLength > n) {
      stream.abort(new Error('too many bytes'))
      throw new Error(`echoed more than the ${n} bytes sent`)
    }
    received.set(bytes, got)
    got += bytes.byteLength
  }
  await writer
  if (got !== n) throw new Error(`echoed ${got} bytes, sent ${n}`)
  if (!received.equals(payload)) throw new Error('echoed bytes differ from the bytes sent')
}

async function dial (argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      security: { type: 'string' },
      'echo-bytes': { type: 'string', default: '1048576' },
      'timeout-secs': { type: 'string', default: '30' }
    },
    allowPositionals: true
  })
  if (positionals.length !== 1) throw new Error('expected exactly one MULTIADDR')
  const echoBytes = Number(values['echo-bytes'])
  const timeoutSecs = Number(values['timeout-secs'])
  if (!Number.isSafeInteger(echoBytes) || echoBytes < 0) throw new Error('bad --echo-bytes')
  if (!(timeoutSecs > 0)) throw new Error('bad --timeout-secs')
  const target = multiaddr(positionals[0])
  const remote = positionals[0].split('/p2p/').pop()
  if (!positionals[0].includes('/p2p/') || remote === '') throw new Error('MULTIADDR must end in /p2p/<peer id>')

  const signal = AbortSignal.timeout(timeoutSecs * 1000)
  const node = await newNode(values.security, [])
  try {
    const identified = new Promise((resolve, reject) => {
      node.addEventListener('peer:identify', (evt) => {
        if (evt.detail.peerId.toString() === remote) resolve(evt.detail)
      })
      signal.addEventListener('abort', () => reject(new Error('timed out waiting for identify')))
    })
    const conn = await node.dial(target, { signal })
    if (conn.remotePeer.toString() !== remote) throw new Error(`connected to ${conn.remotePeer}, expected ${remote}`)
    const id = await identified
    const rtt = await pingOnce(node, conn.remotePeer, signal)
    await echo(node, conn.remotePeer, echoBytes, signal)
    // A QUIC connection runs libp2p TLS and QUIC's own streams, which js-libp2p names
    // `native` and `quic`; the contract's names are weft's.
    const overQuic = isTransport(target, 'quic')
    return {
      ok: true,
      remote_peer: remote,
      agent_version: id.agentVersion ?? '',
      protocols: id.protocols,
      security: overQuic ? '/tls/1.0.0' : (conn.encryption ?? (values.security === 'tls' ? '/tls/1.0.0' : '/noise')),
      muxer: overQuic ? 'quic-v1' : (conn.multiplexer ?? '/yamux/1.0.0'),
      rtt_ms: rtt,
      echo_bytes: echoBytes
    }
  } finally {
    await node.stop().catch(() => {})
  }
}

/**
 * libp2p/test-plans' transport-interop contract: parameters from the environment,
 * the listener's address through redis (RPUSH / BLPOP listenerAddr), one JSON line
 * from the dialer. Throws on any failure (the caller exits 1).
 */
async function transportInterop () {
  const env = (name, fallback) => process.env[name] || fallback
  const transport = env('transport')
  const muxer = env('muxer')
  const isDialer = env('is_dialer')
  const ip = env('ip', '0.0.0.0')
  const redisAddr = env('redis_addr', 'redis:6379')
  const timeoutSecs = Number(env('test_timeout_seconds', '180'))
  // QUIC is secure and multiplexed on its own: test-plans sets neither security nor
  // muxer for it (the node's TLS encrypter is then unused).
  if (transport !== 'tcp' && transport !== 'quic-v1') throw new Error(`transport ${transport} is not supported (tcp, quic-v1)`)
  if (transport === 'tcp' && muxer !== 'yamux') throw new Error(`muxer ${muxer} is not supported (yamux only)`)
  const listenTransport = transport === 'quic-v1' ? 'quic' : 'tcp'
  const security = transport === 'quic-v1' ? 'tls' : env('security')
  if (isDialer !== 'true' && isDialer !== 'false') throw new Error(`is_dialer ${isDialer}: want true or false`)
  if (!(Number.isSafeInteger(timeoutSecs) && timeoutSecs > 0)) throw new Error('bad test_timeout_seconds')
  const signal = AbortSignal.timeout(timeoutSecs * 1000)
  const redis = createClient({ url: `redis://${redisAddr}` })
  redis.on('error', (err) => process.stderr.write(`redis: ${err}\n`))
  await redis.connect()
  try {
    if (isDialer === 'true') {
      const node = await newNode(security, [])
      try {
        const popped = await redis.blPop(LISTENER_ADDR_KEY, timeoutSecs)
        if (popped == null) throw new Error(`no ${LISTENER_ADDR_KEY} within ${timeoutSecs} s`)
        const start = performance.now()
        const conn = await node.dial(multiaddr(popped.element), { signal })
        const rtt = await pingOnce(node, conn.remotePeer, signal)
        await writeStdout(JSON.stringify({
          handshakePlusOneRTTMillis: performance.now() - start,
          pingRTTMilllis: rtt
        }))
      } finally {
        await node.stop().catch(() => {})
      }
      return
    }
    const family = ip.includes(':') ? 'ip6' : 'ip4'
    const node = await newNode(security, [listenAddr(listenTransport, family, ip, 0)])
    const addrs = node.getMultiaddrs().filter((a) => isTransport(a, listenTransport))
    const addr = addrs.find((a) => !/\/(ip4\/127\.|ip6\/::1\/)/.test(a.toString())) ?? addrs[0]
    if (addr == null) throw new Error(`no ${listenTransport} listen address`)
    let line = addr.toString()
    if (!line.includes('/p2p/')) line += `/p2p/${node.peerId.toString()}`
    process.stderr.write(`listening on ${line}\n`)
    await redis.rPush(LISTENER_ADDR_KEY, line)
    await new Promise((resolve) => signal.addEventListener('abort', resolve))
    await node.stop().catch(() => {})
    throw new Error(`still running after the test timeout (${timeoutSecs} s)`)
  } finally {
    try { await redis.close() } catch {}
  }
}

async function main () {
  const [command, ...rest] = process.argv.slice(2)
  if (command === 'transport-interop') {
    try {
      await transportInterop()
    } catch (err) {
      process.stderr.write(`transport-interop failed: ${err?.stack ?? err}\n`)
      process.exit(1)
    }
    process.exit(0)
  } else if (command === 'listen') {
    try {
      await listen(rest)
    } catch (err) {
      process.stderr.write(`listen failed: ${err?.stack ?? err}\n`)
      process.exit(1)
    }
  } else if (command === 'dial') {
    let report
    try {
      report = await dial(rest)
    } catch (err) {
      process.stderr.write(`dial failed: ${err?.stack ?? err}\n`)
      report = { ok: false, error: String(err?.message ?? err) }
    }
    await writeStdout(JSON.stringify(report))
    process.exit(report.ok ? 0 : 1)
  } else {
    usage()
  }
}

await main()
