// The stack wagate replaces, rebuilt small for measurement only: the Node
// server described in ../../../shared/seed/sistema-whatsapp-persistente.md
// (one Baileys socket per organization, multi-file auth state in
// auth_sessions/<org>/, reconnection with 2/4/8… s backoff capped at 30 s and up
// to 999 attempts, a new QR after 3 failures without credentials, a keep-alive
// check every 5 minutes on the WebSocket's readyState, /api/status and
// /api/send-message). The only change from a production set-up is the
// WebSocket URL, pointed at wa-sim. Never used by wagate itself.
//
//   SEED_PORT=8090 SEED_AUTH_DIR=./auth_sessions WA_SIM_WS=ws://127.0.0.1:9400/ws/chat node seed-server.mjs
//
// Routes the seed's app and dashboard used:
//   GET  /api/status?org_id=N        {status, connected, phone_number, phone}
//   POST /api/send-message           {org_id, phone, message} → {success, message_id}
//   POST /api/connect                {org_id}: start a session (shows a QR when unlinked)
//   GET  /api/qr?org_id=N            {qr} while one is shown
// Routes for the benchmark only (not part of the seed):
//   GET  /bench/summary              {sessions, by_status: {connected: n, …}, closes: {why: n}}
//   GET  /bench/acks?since=ms        {acks: {message_id: {ack_ms, delivered_ms}}}

import http from 'node:http'
import fs from 'node:fs'
import path from 'node:path'
import makeWASocket, { useMultiFileAuthState, DisconnectReason } from 'baileys'
import pino from 'pino'

const PORT = Number(process.env.SEED_PORT || 8090)
const AUTH_DIR = process.env.SEED_AUTH_DIR || './auth_sessions'
const WS = process.env.WA_SIM_WS
if (!WS) {
  console.error('WA_SIM_WS is required (wa-sim WebSocket URL)')
  process.exit(2)
}
const MAX_ATTEMPTS = 999
const KEEPALIVE_MS = 5 * 60 * 1000
const logger = pino({ level: process.env.SEED_LOG || 'silent' })

// org id → { sock, status, qr, phone, attempts, failuresWithoutCreds, timer }
const sessions = new Map()
// message id → { ack_ms, delivered_ms }: what the benchmark reads back.
const acks = new Map()
// Why sockets closed (status code → count): what the benchmark reports.
const closes = {}

const authPath = (org) => path.join(AUTH_DIR, String(org))
const hasCreds = (org) => fs.existsSync(path.join(authPath(org), 'creds.json'))

function cleanSession(org, why) {
  const dir = authPath(org)
  if (fs.existsSync(dir)) {
    const aside = `${dir}_${why}_${Date.now()}`
    fs.renameSync(dir, aside)
    console.log(`🧹 Limpiando sesión anterior de ${org} → ${path.basename(aside)}`)
  }
}

async function startSession(org) {
  let s = sessions.get(org)
  if (!s) {
    s = { sock: null, status: 'connecting', qr: null, phone: null, attempts: 0, failuresWithoutCreds: 0, timer: null }
    sessions.set(org, s)
  }
  clearTimeout(s.timer)
  s.timer = null
  const old = s.sock
  s.sock = null
  if (old) old.end(undefined)
  fs.mkdirSync(authPath(org), { recursive: true })
  const { state, saveCreds } = await useMultiFileAuthState(authPath(org))
  const sock = makeWASocket({
    auth: state,
    waWebSocketUrl: WS,
    logger,
    printQRInTerminal: false,
    markOnlineOnConnect: false,
  })
  s.sock = sock
  s.status = 'connecting'
  sock.ev.on('creds.update', saveCreds)
  sock.ev.on('connection.update', (u) => {
    if (s.sock !== sock) return
    if (u.qr) {
      s.qr = u.qr
      s.status = 'qr'
    }
    if (u.connection === 'open') {
      s.status = 'connected'
      s.qr = null
      s.attempts = 0
      s.failuresWithoutCreds = 0
      s.phone = (sock.user?.id || '').split(':')[0].split('@')[0]
      console.log(`✅ WhatsApp conectado exitosamente para ${org}`)
    }
    if (u.connection === 'close') {
      const code = u.lastDisconnect?.error?.output?.statusCode
      const why = `${code ?? 'none'} ${u.lastDisconnect?.error?.message ?? ''}`.trim()
      closes[why] = (closes[why] || 0) + 1
      s.status = 'disconnected'
      if (code === DisconnectReason.loggedOut) {
        cleanSession(org, 'logged_out')
        return
      }
      s.attempts += 1
      const creds = hasCreds(org) && state.creds?.me
      if (!creds) {
        s.failuresWithoutCreds += 1
        if (s.failuresWithoutCreds > 3) {
          cleanSession(org, 'no_creds')
          s.failuresWithoutCreds = 0
        }
      } else if (s.attempts > MAX_ATTEMPTS) {
        console.log(`gave up on ${org} after ${MAX_ATTEMPTS} attempts`)
        return
      }
      const delay = Math.min(2000 * 2 ** (s.attempts - 1), 30000)
      console.log(`🔄 Reconectando ${org} en ${delay}ms`)
      s.timer = setTimeout(() => startSession(org).catch((e) => console.error(org, e)), delay)
    }
  })
  // The benchmark's instrument: when the server acks a message, and when the
  // recipient's delivery receipt arrives (Baileys surfaces only the latter).
  sock.ws.on('CB:ack,class:message', (node) => {
    const id = node.attrs?.id
    if (id && !node.attrs.error) {
      const a = acks.get(id) || {}
      a.ack_ms ??= Date.now()
      acks.set(id, a)
    }
  })
  sock.ev.on('messages.update', (updates) => {
    for (const { key, update } of updates) {
      if (key?.fromMe && update?.status >= 3) {
        const a = acks.get(key.id) || {}
        a.delivered_ms ??= Date.now()
        acks.set(key.id, a)
      }
    }
  })
}

function isOpen(s) {
  return Boolean(s?.sock?.ws?.isOpen) // Baileys 7 spelling of `sock.ws.readyState === 1`
}

// Keep-alive monitor: a "connected" session whose socket is not open is a lie;
// mark it and reconnect.
setInterval(() => {
  for (const [org, s] of sessions) {
    if (s.status === 'connected') {
      if (isOpen(s)) console.log(`💚 Keep-alive OK para ${org}`)
      else {
        s.status = 'disconnected'
        startSession(org).catch((e) => console.error(org, e))
      }
    }
  }
}, KEEPALIVE_MS).unref()

function json(res, code, body) {
  const text = JSON.stringify(body)
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function readBody(req) {
  const chunks = []
  for await (const c of req) chunks.push(c)
  try {
    return JSON.parse(Buffer.concat(chunks).toString() || '{}')
  } catch {
    return {}
  }
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x')
  try {
    if (req.method === 'GET' && url.pathname === '/api/status') {
      const s = sessions.get(url.searchParams.get('org_id'))
      if (s && s.status === 'connected' && !isOpen(s)) s.status = 'disconnected'
      const connected = s?.status === 'connected'
      return json(res, 200, {
        status: s?.status || 'disconnected',
        connected,
        phone_number: connected ? s.phone : null,
        phone: connected ? s.phone : null,
      })
    }
    if (req.method === 'POST' && url.pathname === '/api/send-message') {
      const b = await readBody(req)
      const s = sessions.get(String(b.org_id))
      if (!s || s.status !== 'connected' || !isOpen(s)) {
        if (s) s.status = 'disconnected'
        return json(res, 503, { success: false, error: 'WhatsApp no conectado' })
      }
      const number = String(b.phone || '').replace(/\D/g, '')
      const sent = await s.sock.sendMessage(`${number}@s.whatsapp.net`, { text: String(b.message || '') })
      return json(res, 200, { success: true, message_id: sent?.key?.id })
    }
    if (req.method === 'POST' && url.pathname === '/api/connect') {
      const b = await readBody(req)
      const org = String(b.org_id)
      const s = sessions.get(org)
      if (!s || s.status === 'disconnected') await startSession(org)
      return json(res, 200, { success: true })
    }
    if (req.method === 'GET' && url.pathname === '/api/qr') {
      const s = sessions.get(url.searchParams.get('org_id'))
      return s?.qr ? json(res, 200, { qr: s.qr }) : json(res, 404, { error: 'no QR' })
    }
    if (req.method === 'GET' && url.pathname === '/bench/summary') {
      const by = {}
      for (const s of sessions.values()) {
        const st = s.status === 'connected' && !isOpen(s) ? 'disconnected' : s.status
        by[st] = (by[st] || 0) + 1
      }
      return json(res, 200, { sessions: sessions.size, by_status: by, closes })
    }
    if (req.method === 'GET' && url.pathname === '/bench/acks') {
      return json(res, 200, { acks: Object.fromEntries(acks) })
    }
    json(res, 404, { error: 'not found' })
  } catch (e) {
    json(res, 500, { success: false, error: String(e?.message || e) })
  }
})

// Restore every saved session at start-up, all at once, as the seed does.
fs.mkdirSync(AUTH_DIR, { recursive: true })
for (const org of fs.readdirSync(AUTH_DIR)) {
  if (!org.includes('_') && hasCreds(org)) startSession(org).catch((e) => console.error(org, e))
}
server.listen(PORT, '127.0.0.1', () => console.log(`seed server on 127.0.0.1:${PORT}`))
