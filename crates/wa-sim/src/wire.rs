//! One client connection on the wire: WebSocket messages carrying 3-byte
//! length-prefixed frames (the first one behind the `WA` header), the
//! responder side of the Noise handshake (XX, and IK for clients that kept
//! our certificate chain), then encrypted binary nodes.

use buffa::Message as _;
use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_websockets::{Message, WebSocketStream};
use wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, WA_CONN_HEADER};
use wacore_binary::Node;
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::framing::{encode_frame, FrameDecoder};
use wacore_noise::{NoiseCipher, NoiseHandshake};
use waproto::whatsapp as wa;

pub struct Wire {
    ws: WebSocketStream<TcpStream>,
    dec: FrameDecoder,
    first: bool,
}

/// What one `recv` produced.
pub enum Incoming {
    Frame(BytesMut),
    Closed,
}

impl Wire {
    pub fn new(ws: WebSocketStream<TcpStream>) -> Wire {
        Wire {
            ws,
            dec: FrameDecoder::new(),
            first: true,
        }
    }

    /// The next whole frame, reading WebSocket messages as needed.
    pub async fn recv(&mut self) -> anyhow::Result<Incoming> {
        loop {
            if let Some(f) = self.dec.decode_frame() {
                return Ok(Incoming::Frame(f));
            }
            let Some(msg) = self.ws.next().await else {
                return Ok(Incoming::Closed);
            };
            let msg = msg?;
            if msg.is_close() {
                return Ok(Incoming::Closed);
            }
            if !msg.is_binary() {
                continue;
            }
            let data = msg.as_payload();
            let mut bytes: &[u8] = data;
            if self.first {
                self.first = false;
                // Only the first message carries the header. Another header
                // (Baileys 6.x sends `WA 06 02`, dictionary v2, whose token
                // tables differ) is refused at once: read as a frame length
                // it would hang the client until it timed out.
                match bytes.get(..WA_CONN_HEADER.len()) {
                    Some(h) if h == WA_CONN_HEADER => bytes = &bytes[WA_CONN_HEADER.len()..],
                    other => anyhow::bail!(
                        "unknown connection header {:02x?}: this server speaks {:02x?} (dictionary v3)",
                        other.unwrap_or(bytes),
                        WA_CONN_HEADER
                    ),
                }
            }
            self.dec.feed(bytes);
        }
    }

    pub async fn send_frame(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        let framed = encode_frame(payload, None)?;
        self.ws.send(Message::binary(framed)).await?;
        Ok(())
    }

    pub async fn close(&mut self) {
        let _ = self.ws.close().await;
    }
}

/// The transport ciphers after the handshake, one counter per direction.
pub struct Session {
    read: NoiseCipher,
    write: NoiseCipher,
    rc: u32,
    wc: u32,
}

impl Session {
    pub fn open(&mut self, mut frame: BytesMut) -> anyhow::Result<Node> {
        self.read
            .decrypt_in_place_with_counter(self.rc, &mut frame)
            .map_err(|e| anyhow::anyhow!("decrypt: {e}"))?;
        self.rc = self.rc.wrapping_add(1);
        let unpacked = wacore_binary::util::unpack(&frame)?;
        let node = wacore_binary::marshal::unmarshal_ref(&unpacked)?.to_owned();
        Ok(node)
    }

    pub fn seal(&mut self, node: &Node) -> anyhow::Result<Vec<u8>> {
        let plain = wacore_binary::marshal::marshal(node)?;
        let out = self
            .write
            .encrypt_with_counter(self.wc, &plain)
            .map_err(|e| anyhow::anyhow!("encrypt: {e}"))?;
        self.wc = self.wc.wrapping_add(1);
        Ok(out)
    }
}

fn key32(v: Option<Vec<u8>>, what: &str) -> anyhow::Result<[u8; 32]> {
    v.ok_or_else(|| anyhow::anyhow!("{what} missing"))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{what} is not 32 bytes"))
}

fn pub32(kp: &KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(kp.public_key.public_key_bytes());
    out
}

/// The handshake is done: the transport ciphers (the server reads with the
/// first key and writes with the second) and the client's payload.
fn established(
    n: NoiseHandshake,
    payload: &[u8],
    ik: bool,
) -> anyhow::Result<(Session, wa::ClientPayload, bool)> {
    let (read, write) = n.finish()?;
    let cp = wa::ClientPayload::decode_from_slice(payload)?;
    Ok((
        Session {
            read,
            write,
            rc: 0,
            wc: 0,
        },
        cp,
        ik,
    ))
}

/// The next frame, as a handshake message.
async fn recv_handshake(wire: &mut Wire, what: &str) -> anyhow::Result<wa::HandshakeMessage> {
    let Incoming::Frame(f) = wire.recv().await? else {
        anyhow::bail!("closed before {what}");
    };
    Ok(wa::HandshakeMessage::decode_from_slice(&f)?)
}

/// A serialized ServerHello. IK answers without `static`: the client knew it.
fn server_hello(eph_pub: &[u8; 32], enc_static: Option<Vec<u8>>, enc_cert: Vec<u8>) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(eph_pub.to_vec()),
            r#static: enc_static,
            payload: Some(enc_cert),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Run the responder side of the handshake; returns the session, the
/// client's payload and whether IK was used.
pub async fn handshake(
    wire: &mut Wire,
    server: &KeyPair,
    cert_chain: &[u8],
) -> anyhow::Result<(Session, wa::ClientPayload, bool)> {
    let ch = recv_handshake(wire, "hello")
        .await?
        .client_hello
        .into_option()
        .ok_or_else(|| anyhow::anyhow!("no client_hello"))?;
    let client_eph = key32(ch.ephemeral, "client ephemeral")?;
    let server_pub = pub32(server);
    let eph = KeyPair::generate(&mut rand::rng());
    let eph_pub = pub32(&eph);

    if let (Some(enc_static), Some(enc_payload)) = (ch.r#static, ch.payload) {
        // IK: the client already knows our static key.
        let mut n = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
        n.authenticate(&server_pub);
        n.authenticate(&client_eph);
        n.mix_shared_secret(server.private_key.serialize(), &client_eph)?;
        let client_static: [u8; 32] = n
            .decrypt(&enc_static)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("client static is not 32 bytes"))?;
        n.mix_shared_secret(server.private_key.serialize(), &client_static)?;
        let payload = n.decrypt(&enc_payload)?;
        n.authenticate(&eph_pub);
        n.mix_shared_secret(eph.private_key.serialize(), &client_eph)?;
        n.mix_shared_secret(eph.private_key.serialize(), &client_static)?;
        let enc_cert = n.encrypt(cert_chain)?;
        wire.send_frame(&server_hello(&eph_pub, None, enc_cert))
            .await?;
        return established(n, &payload, true);
    }

    // XX.
    let mut n = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER)?;
    n.authenticate(&client_eph);
    n.authenticate(&eph_pub);
    n.mix_shared_secret(eph.private_key.serialize(), &client_eph)?;
    let enc_static = n.encrypt(&server_pub)?;
    n.mix_shared_secret(server.private_key.serialize(), &client_eph)?;
    let enc_cert = n.encrypt(cert_chain)?;
    wire.send_frame(&server_hello(&eph_pub, Some(enc_static), enc_cert))
        .await?;
    let cf = recv_handshake(wire, "client finish")
        .await?
        .client_finish
        .into_option()
        .ok_or_else(|| anyhow::anyhow!("no client_finish"))?;
    let client_static: [u8; 32] = n
        .decrypt(
            &cf.r#static
                .ok_or_else(|| anyhow::anyhow!("no client static"))?,
        )?
        .try_into()
        .map_err(|_| anyhow::anyhow!("client static is not 32 bytes"))?;
    n.mix_shared_secret(eph.private_key.serialize(), &client_static)?;
    let payload = n.decrypt(&cf.payload.ok_or_else(|| anyhow::anyhow!("no payload"))?)?;
    established(n, &payload, false)
}
