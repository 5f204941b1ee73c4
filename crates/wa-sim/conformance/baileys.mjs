// The conformance check: Baileys — a WhatsApp client nobody here wrote,
// unmodified, configured only with wa-sim's address — links, sends, receives
// and logs in again against wa-sim, as it does against WhatsApp. Run by
// crates/wa-sim/tests/baileys.rs, which starts wa-sim and reads the verdicts
// this prints: one JSON object per line, {"check", "ok", "detail", "ms"}.
//
//   WA_SIM_WS=ws://127.0.0.1:PORT/ws/chat WA_SIM_CONTROL=http://127.0.0.1:PORT \
//   WORK_DIR=/tmp/x node baileys.mjs

import { appendFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import path from 'node:path'
import makeWASocket, { useMultiFileAuthState, DisconnectReason } from 'baileys'
import pino from 'pino'

const WS = process.env.WA_SIM_WS
const CTL = process.env.WA_SIM_CONTROL
const WORK = process.env.WORK_DIR
if (!WS || !CTL || !WORK) {
  console.error('WA_SIM_WS, WA_SIM_CONTROL and WORK_DIR are required')
  process.exit(2)
}

const QR_PHONE = '573001110001'
const CODE_PHONE = '573001110002'
const PATIENT = '573001110009'
const started = Date.now()
let failed = 0

function verdict(check, ok, detail = '', ms = undefined) {
  if (!ok) failed += 1
  console.log(JSON.stringify({ check, ok, detail, ms }))
}

async function control(method, p, body) {
  const r = await fetch(CTL + p, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await r.text()
  let json = null
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: r.status, json, text }
}

function within(ms, what, promise) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

// Baileys' log lines, kept to tell (for instance) whether it waited out its
// initial-sync timeout.
function logSink() {
  const lines = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(l)
      if (process.env.BAILEYS_LOG_FILE) appendFileSync(process.env.BAILEYS_LOG_FILE, chunk)
      cb()
    },
  })
  return { lines, logger: pino({ level: process.env.BAILEYS_LOG || 'info' }, stream) }
}

// A linked device as an app using Baileys would run it: one socket at a time,
// a new socket on "restart required" (the 515 after pairing), as Baileys'
// own example does.
function device(name, { onQr } = {}) {
  const dir = path.join(WORK, name)
  const log = logSink()
  const state = { qrs: [], sock: null, opened: 0, closes: [] }
  let openWaiters = []
  const opened = () =>
    state.opened > 0 ? Promise.resolve() : new Promise((res) => openWaiters.push(res))

  async function start() {
    const { state: auth, saveCreds } = await useMultiFileAuthState(dir)
    const sock = makeWASocket({
      auth,
      waWebSocketUrl: WS,
      logger: log.logger,
      printQRInTerminal: false,
      markOnlineOnConnect: false,
    })
    state.sock = sock
    sock.ev.on('creds.update', saveCreds)
    sock.ev.on('connection.update', async (u) => {
      if (u.qr) {
        state.qrs.push(u.qr)
        if (onQr) onQr(u.qr, sock, state.qrs.length)
      }
      if (u.connection === 'open') {
        state.opened += 1
        const w = openWaiters
        openWaiters = []
        w.forEach((res) => res())
      }
      if (u.connection === 'close') {
        const code = u.lastDisconnect?.error?.output?.statusCode
        state.closes.push(code)
        if (code === DisconnectReason.restartRequired) start().catch((e) => verdict('restart', false, String(e)))
      }
    })
    return sock
  }
  return { start, state, opened, log }
}

async function waitFor(predicate, ms, what) {
  const t0 = Date.now()
  while (Date.now() - t0 < ms) {
    const v = await predicate()
    if (v) return v
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`${what}: not within ${ms} ms`)
}

async function main() {
  for (const [phone, name] of [
    [QR_PHONE, 'Clinica QR'],
    [CODE_PHONE, 'Clinica Codigo'],
    [PATIENT, 'Paciente'],
  ]) {
    const r = await control('POST', '/control/phones', { phone, name })
    if (r.status !== 201) throw new Error(`creating phone ${phone}: ${r.status} ${r.text}`)
  }

  // 1. Link by QR: the phone scans exactly what Baileys shows.
  let scanned = null
  let scanAt = 0
  const qrDev = device('qr', {
    onQr: async (qr, _sock, n) => {
      if (n !== 1) return
      scanAt = Date.now()
      scanned = await control('POST', `/control/phones/${QR_PHONE}/scan`, { qr })
    },
  })
  let t0 = Date.now()
  await qrDev.start()
  try {
    await within(60000, 'link by QR', qrDev.opened())
    const shown = qrDev.state.qrs[0] || ''
    verdict(
      'qr-link',
      scanned?.status === 200,
      `QR shown as ${shown.slice(0, 40)}…; scan answered ${scanned?.status}; closes ${JSON.stringify(qrDev.state.closes)}`,
      Date.now() - scanAt,
    )
  } catch (e) {
    verdict('qr-link', false, `${e.message}; scan: ${scanned?.status} ${scanned?.text}`)
    return
  }
  const sock = qrDev.state.sock
  const me = sock.user?.id || ''
  verdict('qr-link-identity', me.startsWith(QR_PHONE), `logged in as ${me}, lid ${sock.user?.lid}`)
  // Baileys waits up to 20 s for the phone's history-sync notification on
  // its first connection; a phone sends one right after linking.
  const logTime = (re) => {
    const l = qrDev.log.lines.find((x) => re.test(x))
    return l ? JSON.parse(l).time : null
  }
  const online = await waitFor(
    () => logTime(/[Tt]ransitioning to Online|forcing state to Online/),
    25000,
    'initial sync',
  ).catch(() => null)
  const awaiting = logTime(/AwaitingInitialSync, buffering/)
  const timedOut = logTime(/Timeout in AwaitingInitialSync/)
  verdict(
    'initial-sync-without-timeout',
    online !== null && timedOut === null,
    timedOut ? 'waited out the 20 s timeout' : online ? 'history-sync notification received' : 'never went online',
    online && awaiting ? online - awaiting : undefined,
  )

  // 2. Send: delivered, then read when the patient reads it. Baileys folds a
  // status into whichever event still carries the message (an update, or an
  // upsert or chat update it is buffering), so every event is looked at.
  const statuses = new Map()
  const note = (key, status) => {
    if (!key?.id || status === undefined || status === null) return
    statuses.set(key.id, Math.max(statuses.get(key.id) ?? 0, status))
  }
  sock.ev.process(async (events) => {
    for (const u of events['messages.update'] || []) note(u.key, u.update?.status)
    for (const m of events['messages.upsert']?.messages || []) note(m.key, m.status)
    for (const c of events['chats.update'] || []) {
      for (const m of c.messages || []) note(m.message?.key, m.message?.status)
    }
  })
  t0 = Date.now()
  try {
    const sent = await within(30000, 'send', sock.sendMessage(`${PATIENT}@s.whatsapp.net`, { text: 'Recordatorio: cita mañana 10:00' }))
    const id = sent.key.id
    await waitFor(async () => (statuses.get(id) ?? 0) >= 3, 30000, 'delivery receipt')
    const inbox = await control('GET', `/control/phones/${PATIENT}/inbox`)
    const got = (inbox.json?.messages || []).filter((m) => m.id === id)
    verdict(
      'send-delivered',
      got.length === 1 && got[0].text === 'Recordatorio: cita mañana 10:00',
      `patient inbox: ${JSON.stringify(got)}`,
      Date.now() - t0,
    )
    t0 = Date.now()
    await control('POST', `/control/phones/${PATIENT}/read`, { ids: [id] })
    await waitFor(async () => (statuses.get(id) ?? 0) >= 4, 30000, 'read receipt')
    verdict('send-read', true, `status ${statuses.get(id)}`, Date.now() - t0)
  } catch (e) {
    verdict('send', false, String(e.stack || e))
    if (process.env.BAILEYS_LOG) qrDev.log.lines.filter((l) => /receipt|ack/i.test(l)).slice(-15).forEach((l) => console.error(l))
  }

  // 3. Receive: the patient writes to the clinic.
  t0 = Date.now()
  try {
    const got = new Promise((res) => {
      sock.ev.on('messages.upsert', ({ messages }) => {
        for (const m of messages) {
          const text = m.message?.conversation || m.message?.extendedTextMessage?.text
          if (text === 'SI, confirmo') res(m)
        }
      })
    })
    const r = await control('POST', `/control/phones/${PATIENT}/send`, { to: QR_PHONE, text: 'SI, confirmo' })
    const m = await within(30000, 'receive', got)
    verdict('receive', r.status === 200 && !m.key.fromMe, `from ${m.key.remoteJid}`, Date.now() - t0)
  } catch (e) {
    verdict('receive', false, String(e.stack || e))
  }

  // 4. Log in again from the saved credentials: no QR.
  sock.end(undefined)
  await new Promise((r) => setTimeout(r, 500))
  const again = device('qr', {})
  t0 = Date.now()
  await again.start()
  try {
    await within(30000, 're-login', again.opened())
    verdict('relogin-without-qr', again.state.qrs.length === 0, `QR codes shown: ${again.state.qrs.length}`, Date.now() - t0)
  } catch (e) {
    verdict('relogin-without-qr', false, String(e))
  }
  again.state.sock?.end(undefined)

  // 5. Link by pairing code: the phone's user types the code Baileys got.
  let typed = null
  const codeDev = device('code', {
    onQr: async (_qr, sock, n) => {
      if (n !== 1) return
      try {
        const code = await sock.requestPairingCode(CODE_PHONE)
        typed = await control('POST', `/control/phones/${CODE_PHONE}/pair-code`, { code })
      } catch (e) {
        typed = { status: 0, text: String(e) }
      }
    },
  })
  t0 = Date.now()
  await codeDev.start()
  try {
    await within(60000, 'link by pairing code', codeDev.opened())
    verdict('code-link', typed?.status === 200, `code typed: ${typed?.status} ${typed?.text ?? ''}`, Date.now() - t0)
  } catch (e) {
    verdict('code-link', false, `${e.message}; typed: ${typed?.status} ${typed?.text}`)
  }
  codeDev.state.sock?.end(undefined)
}

main()
  .catch((e) => verdict('run', false, String(e.stack || e)))
  .finally(() => {
    console.log(JSON.stringify({ check: 'done', ok: failed === 0, ms: Date.now() - started }))
    process.exit(failed === 0 ? 0 : 1)
  })
