//! Phone numbers as the API accepts them: digits with country code; `+`,
//! spaces, dashes, dots and parentheses are stripped; a number without a
//! country code gets the organization's default one. Anything else is refused.

/// Why a phone number was refused; the text is shown to API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number may contain only digits, '+', spaces, dashes, dots and parentheses")]
    BadCharacters,
    #[error("phone number is too short ({0} digits); include the country code")]
    TooShort(usize),
    #[error("phone number is too long ({0} digits; at most 15)")]
    TooLong(usize),
    #[error("phone number has no country code and the organization has no default_country_code")]
    NeedsCountryCode,
}

/// Normalize `raw` to bare international digits (E.164 without `+`).
///
/// A number written with `+` or `00`, or one at least 11 digits long, is taken
/// as carrying its country code. One starting with a national trunk `0`, or
/// shorter than 11 digits, gets `default_cc` prefixed; without a default a
/// trunk-prefixed number is refused and a short one is taken as complete.
pub fn normalize(raw: &str, default_cc: Option<&str>) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut digits = String::with_capacity(trimmed.len());
    let mut plus = false;
    for (i, ch) in trimmed.chars().enumerate() {
        match ch {
            '0'..='9' => digits.push(ch),
            '+' if i == 0 => plus = true,
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(PhoneError::BadCharacters),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::Empty);
    }
    let full = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else if let Some(national) = digits.strip_prefix('0') {
        // A national trunk prefix: the number needs the org's country code.
        match default_cc {
            Some(cc) => format!("{cc}{}", national.trim_start_matches('0')),
            None => return Err(PhoneError::NeedsCountryCode),
        }
    } else if digits.len() >= 11 {
        digits
    } else if let Some(cc) = default_cc {
        format!("{cc}{digits}")
    } else {
        digits
    };
    if full.starts_with('0') {
        return Err(PhoneError::NeedsCountryCode);
    }
    match full.len() {
        n if n < 8 => Err(PhoneError::TooShort(n)),
        n if n > 15 => Err(PhoneError::TooLong(n)),
        _ => Ok(full),
    }
}

/// A country calling code: 1 to 3 digits, not starting with 0.
pub fn valid_country_code(cc: &str) -> bool {
    (1..=3).contains(&cc.len()) && cc.bytes().all(|b| b.is_ascii_digit()) && !cc.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_decoration() {
        assert_eq!(normalize("+57 300-111-2233", None).unwrap(), "573001112233");
        assert_eq!(
            normalize("(57) 300.111.2233", None).unwrap(),
            "573001112233"
        );
        assert_eq!(normalize("0057 3001112233", None).unwrap(), "573001112233");
    }

    #[test]
    fn adds_default_country_code_to_national_numbers() {
        assert_eq!(normalize("3001112233", Some("57")).unwrap(), "573001112233");
        assert_eq!(
            normalize("0412 555 1234", Some("58")).unwrap(),
            "584125551234"
        );
        // Already international by length: left alone.
        assert_eq!(
            normalize("573001112233", Some("57")).unwrap(),
            "573001112233"
        );
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(normalize("", None), Err(PhoneError::Empty));
        assert_eq!(normalize("  ", Some("57")), Err(PhoneError::Empty));
        assert_eq!(normalize("abc", None), Err(PhoneError::BadCharacters));
        assert_eq!(normalize("57300+111", None), Err(PhoneError::BadCharacters));
        assert_eq!(normalize("12345", None), Err(PhoneError::TooShort(5)));
        assert_eq!(
            normalize("1234567890123456", None),
            Err(PhoneError::TooLong(16))
        );
        assert_eq!(normalize("+-", None), Err(PhoneError::Empty));
        assert_eq!(
            normalize("3001112233@s.whatsapp.net", None),
            Err(PhoneError::BadCharacters)
        );
        assert_eq!(
            normalize("0412 555 1234", None),
            Err(PhoneError::NeedsCountryCode)
        );
    }

    #[test]
    fn country_codes() {
        assert!(valid_country_code("57"));
        assert!(valid_country_code("1"));
        assert!(!valid_country_code("057"));
        assert!(!valid_country_code("1234"));
        assert!(!valid_country_code("+57"));
        assert!(!valid_country_code(""));
    }
}
