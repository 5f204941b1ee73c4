//! The dashboard's words in English and Spanish, and which of the two a
//! request gets: the `wagate_lang` cookie when the user switched, else the
//! browser's `Accept-Language` (Spanish for `es` and `es-*`), else English.

use axum::http::{header, HeaderMap};

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
    ("state.stopped", "Stopped", "Detenido"),
    // states: what it means and what to do
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
        "say.stopped",
        "The link is stopped.",
        "La vinculación está detenida.",
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

    #[test]
    fn every_key_the_pages_and_script_use_exists() {
        // Keys are written as t("…") in the Rust pages and as T("…") / data-t="…"
        // in the script; scan the sources for them.
        let sources = [
            include_str!("pages.rs"),
            include_str!("mod.rs"),
            include_str!("actions.rs"),
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
