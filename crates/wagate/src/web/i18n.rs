//! The dashboard's words in English and Spanish, and which of the two a
//! request gets: the `wagate_lang` cookie when the user switched, else the
//! browser's `Accept-Language` (Spanish for `es` and `es-*`), else English.
//! A link's reason is worded here from its data (`describe`), never from the
//! API's English sentence.

use axum::http::{header, HeaderMap};

use crate::session::{Cause, Purpose, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

pub const LANG_COOKIE: &str = "wagate_lang";

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Es,
            Lang::Es => Lang::En,
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }

    /// The language for a request.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(l) = super::cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v)) {
            return l;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(from_accept_language)
            .unwrap_or(Lang::En)
    }

    /// The text for `key`, if the table has it.
    pub fn get(self, key: &str) -> Option<&'static str> {
        TABLE
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, en, es)| match self {
                Lang::En => *en,
                Lang::Es => *es,
            })
    }

    /// The text for `key`; "?" if the table lacks it (a test checks that
    /// every key the pages use is in the table).
    pub fn t(self, key: &str) -> &'static str {
        self.get(key).unwrap_or_else(|| {
            tracing::warn!(key, "dashboard text missing");
            "?"
        })
    }

    /// Every text of this language, for the page's script.
    pub fn all(self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = TABLE
            .iter()
            .map(|(k, en, es)| {
                let v = if self == Lang::En { en } else { es };
                (k.to_string(), serde_json::Value::from(*v))
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

fn secs(ms: u64) -> String {
    format!("{}", (ms as f64 / 1000.0).round() as u64)
}

fn phone(p: &str) -> String {
    format!("+{p}")
}

fn cause(lang: Lang, c: &Cause) -> String {
    match c {
        Cause::RestartStorm { count } => lang
            .t("cause.restart_storm")
            .replace("{n}", &count.to_string()),
        Cause::ServerError { code, .. } => lang
            .t("cause.server_error")
            .replace("{n}", &code.to_string()),
        Cause::Network { .. } => lang.t("cause.network").to_string(),
        Cause::Requested => lang.t("cause.requested").to_string(),
        Cause::LoginTimeout { secs } => lang
            .t("cause.login_timeout")
            .replace("{n}", &secs.to_string()),
        Cause::KeepaliveLate { silent_s } => lang
            .t("cause.keepalive_late")
            .replace("{n}", &silent_s.to_string()),
    }
}

/// Why a link is where it is, in `lang`, from the reason's data alone (free
/// text from WhatsApp or the library is left out: it is English).
pub fn describe(lang: Lang, reason: &Reason, decrypt_failures: u64) -> String {
    let t = |k: &str| lang.t(k).to_string();
    let base = match reason {
        Reason::Starting => t("why.starting"),
        Reason::WaitingForTurn => t("why.waiting_for_turn"),
        Reason::OwnerSilent { node } => t("why.owner_silent").replace("{node}", node),
        Reason::NotLinked => t("why.not_linked"),
        Reason::Connecting {
            purpose: Purpose::Login,
            attempt: 0,
        } => t("why.connecting"),
        Reason::Connecting {
            purpose: Purpose::Login,
            attempt,
        } => t("why.reconnecting").replace("{n}", &attempt.to_string()),
        Reason::Connecting {
            purpose: Purpose::Qr,
            ..
        } => t("why.connecting_qr"),
        Reason::Connecting {
            purpose: Purpose::PairCode,
            ..
        } => t("why.connecting_pair_code"),
        Reason::ScanQr => t("why.scan_qr"),
        Reason::TypePairCode => t("why.type_pair_code"),
        Reason::Paired { phone: p } => t("why.paired").replace("{phone}", &phone(p)),
        Reason::Connected { phone: Some(p) } => t("why.connected").replace("{phone}", &phone(p)),
        Reason::Connected { phone: None } => t("why.connected_plain"),
        Reason::RetryScheduled {
            cause: c,
            delay_ms,
            attempt,
        } => t("why.retry_scheduled")
            .replace("{cause}", &cause(lang, c))
            .replace("{s}", &secs(*delay_ms))
            .replace("{n}", &attempt.to_string()),
        Reason::NoCodeAfterTries { tries, cause: c } => t("why.no_code_after_tries")
            .replace("{cause}", &cause(lang, c))
            .replace("{n}", &tries.to_string()),
        Reason::CodesUnused { rounds } => t("why.codes_unused").replace("{n}", &rounds.to_string()),
        Reason::PhoneUnlinked { .. } => t("why.phone_unlinked"),
        Reason::LoggedOutOnRequest => t("why.logged_out_on_request"),
        Reason::Replaced => t("why.replaced"),
        Reason::Banned {
            expires_in_s: Some(s),
            ..
        } => t("why.banned").replace("{s}", &s.to_string()),
        Reason::Banned {
            expires_in_s: None, ..
        } => t("why.banned_open"),
        Reason::Outdated => t("why.outdated"),
        Reason::CredentialsUnreadable { .. } => t("why.credentials_unreadable"),
        Reason::StoreUnavailable {
            delay_ms, attempt, ..
        } => t("why.store_unavailable")
            .replace("{s}", &secs(*delay_ms))
            .replace("{n}", &attempt.to_string()),
        Reason::Stopped => t("why.stopped"),
    };
    match decrypt_failures {
        0 => base,
        n => format!(
            "{base} {}",
            t("why.decrypt_failures").replace("{n}", &n.to_string())
        ),
    }
}

/// Highest-quality language of `es`/`en` in an `Accept-Language` value.
fn from_accept_language(v: &str) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for part in v.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        let lang = match primary {
            "es" => Lang::Es,
            "en" => Lang::En,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l).unwrap_or(Lang::En)
}

/// (key, English, Spanish). `{phone}`, `{n}`, `{org}` are filled in by the
/// page or its script.
pub const TABLE: &[(&str, &str, &str)] = &[
    ("app.title", "WhatsApp gateway", "Pasarela de WhatsApp"),
    ("lang.switch", "Español", "English"),
    ("nav.orgs", "Organizations", "Organizaciones"),
    ("nav.signout", "Sign out", "Cerrar sesión"),
    // sign-in
    ("login.title", "Sign in", "Iniciar sesión"),
    ("login.token", "Access token", "Token de acceso"),
    (
        "login.hint",
        "Paste your organization's token (it starts with wgo_) or the administrator token (wga_).",
        "Pegue el token de su organización (empieza por wgo_) o el token de administrador (wga_).",
    ),
    ("login.submit", "Sign in", "Entrar"),
    (
        "login.bad",
        "That token is not valid. Check that you copied all of it and try again.",
        "Ese token no es válido. Compruebe que lo copió completo e inténtelo de nuevo.",
    ),
    (
        "login.empty",
        "Paste a token to sign in.",
        "Pegue un token para entrar.",
    ),
    (
        "login.expired",
        "Your session has expired or its token is no longer valid. Sign in again.",
        "Su sesión ha caducado o su token ya no es válido. Inicie sesión de nuevo.",
    ),
    ("login.out", "You have signed out.", "Ha cerrado la sesión."),
    // errors
    (
        "err.forbidden",
        "This token cannot open that organization.",
        "Este token no puede abrir esa organización.",
    ),
    (
        "err.admin_only",
        "Only the administrator token can see every organization.",
        "Solo el token de administrador puede ver todas las organizaciones.",
    ),
    (
        "err.not_found",
        "There is no such organization.",
        "Esa organización no existe.",
    ),
    (
        "err.csrf",
        "This form has expired or did not come from this page. Reload the page and try again.",
        "Este formulario caducó o no vino de esta página. Recargue la página e inténtelo de nuevo.",
    ),
    (
        "err.server",
        "Something went wrong on the server. Try again; if it keeps happening, the gateway's log has the details.",
        "Algo falló en el servidor. Inténtelo de nuevo; si se repite, el registro de la pasarela tiene los detalles.",
    ),
    ("err.back", "Back", "Volver"),
    (
        "err.no_page",
        "There is no such page.",
        "Esa página no existe.",
    ),
    (
        "err.invalid_phone",
        "That phone number is not valid. Write it with the country code, e.g. +57 300 111 2233.",
        "Ese número no es válido. Escríbalo con el indicativo del país, p. ej. +57 300 111 2233.",
    ),
    (
        "err.empty_text",
        "Write the text of the message.",
        "Escriba el texto del mensaje.",
    ),
    (
        "err.text_too_long",
        "The text is too long.",
        "El texto es demasiado largo.",
    ),
    (
        "err.already_linked",
        "This number is already linked and connected.",
        "Este número ya está vinculado y conectado.",
    ),
    (
        "err.no_pair_code",
        "WhatsApp did not give a pairing code. Try the QR code instead.",
        "WhatsApp no entregó un código de vinculación. Use el código QR.",
    ),
    (
        "err.too_large",
        "That form is too large.",
        "Ese formulario es demasiado grande.",
    ),
    (
        "err.session_stopped",
        "This organization is being deleted or the gateway is stopping. Try again in a moment.",
        "Esta organización se está eliminando o la pasarela se está deteniendo. Inténtelo en un momento.",
    ),
    (
        "err.pair_code_timeout",
        "WhatsApp took too long to give a pairing code. Try again in a minute.",
        "WhatsApp tardó demasiado en dar un código de vinculación. Inténtelo en un minuto.",
    ),
    // overview
    ("ov.title", "Organizations", "Organizaciones"),
    ("ov.org", "Organization", "Organización"),
    ("ov.state", "State", "Estado"),
    ("ov.phone", "Number", "Número"),
    ("ov.in_state", "In this state for", "En este estado desde hace"),
    ("ov.queued", "Queued messages", "Mensajes en cola"),
    (
        "ov.none",
        "No organizations yet. Create one with `wagate org create`.",
        "Aún no hay organizaciones. Cree una con `wagate org create`.",
    ),
    // states: badge words
    ("state.starting", "Starting", "Iniciando"),
    ("state.new", "Not linked", "Sin vincular"),
    ("state.pairing", "Waiting for scan", "Esperando escaneo"),
    ("state.connecting", "Connecting", "Conectando"),
    ("state.connected", "Connected", "Conectado"),
    ("state.reconnecting", "Reconnecting", "Reconectando"),
    ("state.needs_qr", "Needs a new QR", "Necesita un QR nuevo"),
    ("state.logged_out", "Logged out", "Sesión cerrada"),
    ("state.replaced", "Replaced", "Reemplazada"),
    ("state.banned", "Blocked", "Bloqueado"),
    ("state.outdated", "Outdated", "Desactualizado"),
    ("state.error", "Error", "Error"),
    ("state.stopped", "Stopped", "Detenido"),
    // states: what it means and what to do
    (
        "say.starting",
        "wagate is opening this number's saved state.",
        "wagate está abriendo el estado guardado de este número.",
    ),
    (
        "say.new",
        "WhatsApp is not linked yet. Press “Link with a QR code” and scan it with the phone.",
        "WhatsApp aún no está vinculado. Pulse “Vincular con código QR” y escanéelo con el teléfono.",
    ),
    (
        "say.pairing",
        "Open WhatsApp on the phone: Settings → Linked devices → Link a device, and scan this code.",
        "Abra WhatsApp en el teléfono: Configuración → Dispositivos vinculados → Vincular un dispositivo, y escanee este código.",
    ),
    (
        "say.connecting",
        "Connecting to WhatsApp…",
        "Conectando con WhatsApp…",
    ),
    (
        "say.connected",
        "WhatsApp connected, {phone}.",
        "WhatsApp conectado, {phone}.",
    ),
    (
        "say.reconnecting",
        "The connection dropped; wagate is reconnecting by itself. Messages wait in the queue meanwhile.",
        "Se perdió la conexión; wagate está reconectando solo. Mientras tanto los mensajes esperan en la cola.",
    ),
    (
        "say.needs_qr",
        "The link needs a new QR code (no one scanned it in time, or the saved session was unusable). Press “Link with a QR code”.",
        "La vinculación necesita un QR nuevo (nadie lo escaneó a tiempo o la sesión guardada no servía). Pulse “Vincular con código QR”.",
    ),
    (
        "say.logged_out",
        "The phone unlinked this device. Link it again with a new QR code.",
        "El teléfono desvinculó este dispositivo. Vincúlelo de nuevo con un código QR nuevo.",
    ),
    (
        "say.replaced",
        "Another session took over this number. Close it, then press “Reconnect now”.",
        "Otra sesión tomó este número. Ciérrela y pulse “Reconectar ahora”.",
    ),
    (
        "say.banned",
        "WhatsApp has blocked this number for now; wagate tries again when the block ends.",
        "WhatsApp bloqueó este número por ahora; wagate lo intentará de nuevo cuando termine el bloqueo.",
    ),
    (
        "say.outdated",
        "WhatsApp says this version is outdated. Update wagate.",
        "WhatsApp dice que esta versión está desactualizada. Actualice wagate.",
    ),
    (
        "say.error",
        "wagate cannot open this number's saved state right now (the server is short of file descriptors, disk space or permissions). It keeps trying; the link is not lost.",
        "wagate no puede abrir ahora el estado guardado de este número (al servidor le faltan descriptores de archivo, espacio en disco o permisos). Lo sigue intentando; la vinculación no se pierde.",
    ),
    (
        "say.stopped",
        "The link is stopped.",
        "La vinculación está detenida.",
    ),
    // why a link is in its state (from the reason's data)
    ("why.starting", "Starting…", "Iniciando…"),
    (
        "why.waiting_for_turn",
        "Linked before; it reconnects in a moment.",
        "Vinculado antes; se reconecta en un momento.",
    ),
    (
        "why.owner_silent",
        "The server that held this link ({node}) stopped answering; another takes it over in a few seconds, with no QR.",
        "El servidor que tenía esta vinculación ({node}) dejó de responder; otro la retoma en unos segundos, sin QR.",
    ),
    ("why.not_linked", "Not linked yet.", "Aún no vinculado."),
    ("why.connecting", "Connecting to WhatsApp.", "Conectando con WhatsApp."),
    (
        "why.reconnecting",
        "Reconnecting to WhatsApp (attempt {n}).",
        "Reconectando con WhatsApp (intento {n}).",
    ),
    (
        "why.connecting_qr",
        "Asking WhatsApp for a QR code.",
        "Pidiendo un código QR a WhatsApp.",
    ),
    (
        "why.connecting_pair_code",
        "Asking WhatsApp for a pairing code.",
        "Pidiendo un código de vinculación a WhatsApp.",
    ),
    (
        "why.scan_qr",
        "Waiting for the QR code to be scanned.",
        "Esperando a que se escanee el código QR.",
    ),
    (
        "why.type_pair_code",
        "Waiting for the code to be typed on the phone.",
        "Esperando a que se escriba el código en el teléfono.",
    ),
    (
        "why.paired",
        "Linked to {phone}; signing in.",
        "Vinculado a {phone}; iniciando sesión.",
    ),
    ("why.connected", "Connected as {phone}.", "Conectado como {phone}."),
    ("why.connected_plain", "Connected.", "Conectado."),
    (
        "why.retry_scheduled",
        "{cause}; next try in {s} s (attempt {n}).",
        "{cause}; próximo intento en {s} s (intento {n}).",
    ),
    (
        "why.no_code_after_tries",
        "No QR code could be had after {n} tries ({cause}). Press “Link with a QR code” to try again.",
        "No se pudo obtener un código QR tras {n} intentos ({cause}). Pulse “Vincular con código QR” para intentarlo de nuevo.",
    ),
    (
        "why.codes_unused",
        "Nobody linked the device after {n} rounds of codes.",
        "Nadie vinculó el dispositivo tras {n} rondas de códigos.",
    ),
    (
        "why.phone_unlinked",
        "The phone unlinked this device.",
        "El teléfono desvinculó este dispositivo.",
    ),
    (
        "why.logged_out_on_request",
        "Logged out on request.",
        "Sesión cerrada a petición.",
    ),
    (
        "why.replaced",
        "Another session took over this number.",
        "Otra sesión tomó este número.",
    ),
    (
        "why.banned",
        "WhatsApp blocked this number; next try in {s} s.",
        "WhatsApp bloqueó este número; próximo intento en {s} s.",
    ),
    (
        "why.banned_open",
        "WhatsApp blocked this number for now.",
        "WhatsApp bloqueó este número por ahora.",
    ),
    (
        "why.outdated",
        "WhatsApp refused this version (405).",
        "WhatsApp rechazó esta versión (405).",
    ),
    (
        "why.credentials_unreadable",
        "The saved credentials could not be read; they were moved aside (not deleted).",
        "Las credenciales guardadas no se pudieron leer; se apartaron (no se borraron).",
    ),
    (
        "why.store_unavailable",
        "The saved state of this number could not be opened (the server is short of resources); its credentials are kept. Next try in {s} s (attempt {n}).",
        "No se pudo abrir el estado guardado de este número (al servidor le faltan recursos); sus credenciales se conservan. Próximo intento en {s} s (intento {n}).",
    ),
    ("why.stopped", "Stopped.", "Detenido."),
    (
        "why.decrypt_failures",
        "{n} incoming message(s) could not be decrypted; WhatsApp asked the senders to resend.",
        "{n} mensaje(s) entrante(s) no se pudieron descifrar; WhatsApp pidió a los remitentes reenviarlos.",
    ),
    (
        "cause.restart_storm",
        "WhatsApp asked to restart {n} times in a minute",
        "WhatsApp pidió reiniciar {n} veces en un minuto",
    ),
    (
        "cause.server_error",
        "WhatsApp server error {n}",
        "Error {n} del servidor de WhatsApp",
    ),
    (
        "cause.network",
        "The connection to WhatsApp was lost",
        "Se perdió la conexión con WhatsApp",
    ),
    (
        "cause.requested",
        "The gateway closed the connection",
        "La pasarela cerró la conexión",
    ),
    (
        "cause.login_timeout",
        "WhatsApp did not finish the sign-in within {n} s",
        "WhatsApp no completó el inicio de sesión en {n} s",
    ),
    (
        "cause.keepalive_late",
        "No sign of life from WhatsApp for {n} s",
        "Sin señales de WhatsApp durante {n} s",
    ),
    // org page
    ("org.phone", "Number", "Número"),
    ("org.since", "In this state for", "En este estado desde hace"),
    ("org.queued", "Queued messages", "Mensajes en cola"),
    ("org.retry_in", "Next try in", "Próximo intento en"),
    ("org.link_qr", "Link with a QR code", "Vincular con código QR"),
    ("org.reconnect", "Reconnect now", "Reconectar ahora"),
    (
        "org.use_code",
        "Use a pairing code instead",
        "Usar un código de vinculación",
    ),
    (
        "org.code_phone",
        "The phone's number, with country code",
        "Número del teléfono, con indicativo",
    ),
    ("org.get_code", "Get a code", "Obtener código"),
    (
        "org.code_howto",
        "On the phone: WhatsApp → Linked devices → Link a device → Link with phone number instead, then type this code:",
        "En el teléfono: WhatsApp → Dispositivos vinculados → Vincular un dispositivo → Vincular con el número de teléfono, y escriba este código:",
    ),
    ("org.qr_alt", "QR code to scan with WhatsApp", "Código QR para escanear con WhatsApp"),
    (
        "org.qr_expires",
        "This code changes in {n} s.",
        "Este código cambia en {n} s.",
    ),
    (
        "org.qr_waiting",
        "Waiting for a QR code from WhatsApp…",
        "Esperando un código QR de WhatsApp…",
    ),
    ("org.test", "Send a test message", "Enviar un mensaje de prueba"),
    ("org.to", "Number", "Número"),
    ("org.text", "Text", "Texto"),
    (
        "org.text_default",
        "Test message from wagate",
        "Mensaje de prueba desde wagate",
    ),
    ("org.send", "Send", "Enviar"),
    ("org.sent", "Message queued.", "Mensaje en cola."),
    ("org.messages", "Last messages", "Últimos mensajes"),
    ("org.no_messages", "No messages yet.", "Aún no hay mensajes."),
    ("org.when", "When", "Cuándo"),
    ("org.status", "Status", "Estado"),
    ("org.history", "Last state changes", "Últimos cambios de estado"),
    ("org.reason", "Reason", "Motivo"),
    ("org.danger", "Unlink", "Desvincular"),
    ("org.logout", "Log out of WhatsApp", "Cerrar sesión de WhatsApp"),
    (
        "org.reset",
        "Reset (clean session)",
        "Reiniciar (limpiar sesión)",
    ),
    (
        "org.logout_q",
        "Log out of WhatsApp? The phone will no longer be linked; to send again someone must scan a new QR code.",
        "¿Cerrar la sesión de WhatsApp? El teléfono dejará de estar vinculado; para volver a enviar alguien debe escanear un QR nuevo.",
    ),
    (
        "org.reset_q",
        "Reset the session? The saved credentials are moved aside (not deleted) and a fresh pairing starts with a new QR code.",
        "¿Reiniciar la sesión? Las credenciales guardadas se apartan (no se borran) y empieza una vinculación nueva con un QR nuevo.",
    ),
    ("org.confirm_logout", "Yes, log out", "Sí, cerrar sesión"),
    ("org.confirm_reset", "Yes, reset", "Sí, reiniciar"),
    ("org.cancel", "Cancel", "Cancelar"),
    ("org.done_logout", "Logged out.", "Sesión cerrada."),
    ("org.done_reset", "Session reset; scan the new QR code.", "Sesión reiniciada; escanee el código QR nuevo."),
    ("org.done_connect", "Starting…", "Iniciando…"),
    (
        "org.decrypt_failures",
        "Messages that could not be decrypted",
        "Mensajes que no se pudieron descifrar",
    ),
    (
        "org.live_lost",
        "Live updates interrupted; reconnecting…",
        "Actualizaciones en vivo interrumpidas; reconectando…",
    ),
    // message statuses
    ("msg.queued", "queued", "en cola"),
    ("msg.sent", "sent", "enviado"),
    ("msg.delivered", "delivered", "entregado"),
    ("msg.read", "read", "leído"),
    ("msg.failed", "failed", "falló"),
    ("msg.scheduled", "scheduled", "programado"),
    ("msg.expired", "expired (never sent)", "vencido (no se envió)"),
    ("msg.canceled", "canceled", "cancelado"),
    ("org.due", "due", "sale"),
    ("org.cancel_message", "Cancel", "Cancelar"),
    ("org.done_cancel", "Message canceled; it will not be sent.", "Mensaje cancelado; no se enviará."),
    (
        "err.not_cancelable",
        "That message was already handed to WhatsApp; it can no longer be canceled.",
        "Ese mensaje ya se entregó a WhatsApp; ya no se puede cancelar.",
    ),
    ("org.held", "held", "retenido"),
    ("org.retry_at", "tried again", "se reintenta"),
    ("org.waiting", "Waiting to be sent", "Esperando envío"),
    ("org.no_waiting", "Nothing scheduled or held.", "Nada programado ni retenido."),
    ("org.held_title", "Held by a WhatsApp limit", "Retenidos por un límite de WhatsApp"),
    ("org.scheduled_title", "Scheduled", "Programados"),
    (
        "org.reachout_until",
        "WhatsApp refuses first messages to new contacts until",
        "WhatsApp rechaza los primeros mensajes a contactos nuevos hasta",
    ),
    ("org.capping", "New chats this cycle (WhatsApp's quota)", "Chats nuevos en este ciclo (cuota de WhatsApp)"),
    (
        "held.reachout_timelock",
        "WhatsApp refuses first messages to new contacts for now (reach-out timelock); it goes when that ends",
        "WhatsApp rechaza por ahora los primeros mensajes a contactos nuevos (bloqueo de primer contacto); sale cuando termine",
    ),
    (
        "held.message_cap",
        "WhatsApp's quota of new chats is used up for this cycle; it goes when the cycle ends",
        "Se agotó la cuota de chats nuevos de WhatsApp en este ciclo; sale cuando empiece el siguiente",
    ),
    (
        "held.new_contact_cap",
        "This organization's daily cap on new contacts is reached; it goes when the 24 hours allow",
        "Se alcanzó el tope diario de contactos nuevos de la organización; sale cuando las 24 horas lo permitan",
    ),
    ("org.policy", "Sending policy", "Política de envío"),
    ("org.done_policy", "Sending policy saved; it applies from the next message.", "Política de envío guardada; se aplica desde el próximo mensaje."),
    ("pol.min_gap", "Shortest gap between messages (seconds)", "Pausa mínima entre mensajes (segundos)"),
    ("pol.max_gap", "Longest gap between messages (seconds)", "Pausa máxima entre mensajes (segundos)"),
    ("pol.hourly", "Most messages per hour (empty: no cap)", "Máximo de mensajes por hora (vacío: sin tope)"),
    ("pol.daily", "Most messages per 24 hours (empty: no cap)", "Máximo de mensajes en 24 horas (vacío: sin tope)"),
    (
        "pol.new_contacts",
        "Most first messages to new contacts per 24 hours (empty: no cap)",
        "Máximo de primeros mensajes a contactos nuevos en 24 horas (vacío: sin tope)",
    ),
    ("pol.quiet_start", "Quiet hours from (empty: none)", "Horas de silencio desde (vacío: ninguna)"),
    ("pol.quiet_end", "Quiet hours until", "Horas de silencio hasta"),
    ("pol.timezone", "Time zone (IANA name)", "Zona horaria (nombre IANA)"),
    ("pol.typing", "Show “typing…” before each message", "Mostrar «escribiendo…» antes de cada mensaje"),
    ("pol.save", "Save policy", "Guardar política"),
    (
        "err.invalid_policy",
        "The sending policy was not saved: a value is out of range or not valid",
        "La política de envío no se guardó: un valor está fuera de rango o no es válido",
    ),
    ("org.webhooks", "Webhooks", "Webhooks"),
    ("org.replies", "What patients sent", "Lo que enviaron los pacientes"),
    ("org.no_replies", "Nothing received yet.", "Aún no se ha recibido nada."),
    ("org.from", "From", "De"),
    ("org.answers", "Answers", "Responde a"),
    ("org.reacted", "reacted", "reaccionó"),
    (
        "wh.none",
        "No webhooks yet. Add one through the API: POST /v1/orgs/{org}/webhooks.",
        "Aún no hay webhooks. Agregue uno por la API: POST /v1/orgs/{org}/webhooks.",
    ),
    ("wh.active", "active", "activo"),
    ("wh.disabled", "disabled (410 Gone)", "desactivado (410 Gone)"),
    ("wh.delivered", "delivered", "entregado"),
    ("wh.pending", "pending", "pendiente"),
    ("wh.failed", "failed", "falló"),
    ("wh.event", "Event", "Evento"),
    ("wh.attempts", "Tries", "Intentos"),
    ("wh.last_error", "Last error", "Último error"),
    ("wh.retry", "Send again", "Enviar de nuevo"),
    ("org.done_retry", "The delivery was queued again.", "La entrega se volvió a poner en cola."),
    (
        "err.delivery_not_found",
        "That delivery does not exist for this webhook.",
        "Esa entrega no existe para este webhook.",
    ),
    // durations
    ("dur.s", "{n} s", "{n} s"),
    ("dur.m", "{n} min", "{n} min"),
    ("dur.h", "{n} h", "{n} h"),
    ("dur.d", "{n} d", "{n} d"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_spanish_for_es_variants() {
        assert_eq!(from_accept_language("es-CO,es;q=0.9,en;q=0.8"), Lang::Es);
        assert_eq!(from_accept_language("es"), Lang::Es);
        assert_eq!(from_accept_language("ES-mx"), Lang::Es);
        assert_eq!(from_accept_language("en-US,en;q=0.9,es;q=0.8"), Lang::En);
        assert_eq!(from_accept_language("fr-FR,es;q=0.5"), Lang::Es);
        assert_eq!(from_accept_language("fr-FR,de"), Lang::En);
        assert_eq!(from_accept_language("en;q=0.2,es;q=0.7"), Lang::Es);
        assert_eq!(from_accept_language("es;q=0,en;q=0.1"), Lang::En);
        assert_eq!(from_accept_language(""), Lang::En);
        assert_eq!(from_accept_language(";;;,q=,es;q=abc"), Lang::Es);
    }

    #[test]
    fn table_has_each_key_once_and_both_languages() {
        let mut keys: Vec<&str> = TABLE.iter().map(|(k, _, _)| *k).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key appears twice");
        for (k, en, es) in TABLE {
            assert!(!en.is_empty() && !es.is_empty(), "{k} lacks a text");
        }
    }

    /// The Spanish dashboard never shows English: every reason, in every
    /// shape, is worded from the table, and differs from the English words.
    #[test]
    fn every_reason_is_worded_in_both_languages() {
        let english_markers = [
            "the ",
            " with ",
            "retrying",
            "Link again",
            "connection lost",
            "could not",
            "WhatsApp connected",
            "keep-alive",
            "server error",
            "POST",
        ];
        for r in Reason::samples() {
            let es = describe(Lang::Es, &r, 3);
            let en = describe(Lang::En, &r, 3);
            assert!(
                !es.contains('?') || es.contains('¿'),
                "{r:?}: missing text in {es}"
            );
            assert_ne!(es, en, "{r:?}");
            for m in english_markers {
                assert!(!es.contains(m), "{r:?}: Spanish text has {m:?}: {es}");
            }
            for placeholder in ["{n}", "{s}", "{phone}", "{cause}"] {
                assert!(
                    !es.contains(placeholder) && !en.contains(placeholder),
                    "{r:?}: {es} / {en}"
                );
            }
        }
    }

    #[test]
    fn every_state_has_a_badge_and_a_sentence() {
        for s in crate::session::State::ALL {
            for lang in [Lang::En, Lang::Es] {
                assert!(
                    lang.get(&format!("state.{}", s.as_str())).is_some(),
                    "{s:?}"
                );
                assert!(lang.get(&format!("say.{}", s.as_str())).is_some(), "{s:?}");
            }
        }
    }

    #[test]
    fn every_key_the_pages_and_script_use_exists() {
        // Keys are written as t("…") in the Rust pages and as T("…") / data-t="…"
        // in the script; scan the sources for them.
        let sources = [
            include_str!("pages.rs"),
            include_str!("mod.rs"),
            include_str!("actions.rs"),
            include_str!("i18n.rs"),
            include_str!("assets/app.js"),
        ];
        let known: Vec<&str> = TABLE.iter().map(|(k, _, _)| *k).collect();
        for src in sources {
            for marker in ["t(\"", "T(\""] {
                for piece in src.split(marker).skip(1) {
                    let key = piece.split('"').next().unwrap_or("");
                    if key.contains('.') && !key.ends_with('.') {
                        assert!(known.contains(&key), "missing dashboard text {key:?}");
                    }
                }
            }
        }
    }
}
