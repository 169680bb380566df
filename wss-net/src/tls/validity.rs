//! A certificate's validity period, read from its DER with a few lines of parsing, so an
//! expired certificate stops the server at start instead of failing every handshake later.
//!
//! Only the path to `tbsCertificate.validity` is walked (RFC 5280 §4.1): SEQUENCE, SEQUENCE,
//! an optional `[0]` version, then serial, signature algorithm and issuer are skipped.

use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;

/// When a certificate is valid: `notBefore` and `notAfter`, in seconds since the Unix epoch
/// (UTC), both inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity, seconds since 1970-01-01 UTC.
    pub not_before: i64,
    /// End of validity, seconds since 1970-01-01 UTC.
    pub not_after: i64,
}

impl Validity {
    /// Reads the validity of a DER certificate; `None` if the structure is not what X.509
    /// prescribes.
    pub fn of(cert: &CertificateDer<'_>) -> Option<Validity> {
        let (tag, cert_body, _) = tlv(cert.as_ref())?;
        if tag != 0x30 {
            return None;
        }
        let (tag, mut tbs, _) = tlv(cert_body)?;
        if tag != 0x30 {
            return None;
        }
        let (tag, _, rest) = tlv(tbs)?;
        if tag == 0xa0 {
            tbs = rest;
        }
        // serial, signature algorithm, issuer
        for expected in [0x02, 0x30, 0x30] {
            let (tag, _, rest) = tlv(tbs)?;
            if tag != expected {
                return None;
            }
            tbs = rest;
        }
        let (tag, validity, _) = tlv(tbs)?;
        if tag != 0x30 {
            return None;
        }
        let (tag, before, rest) = tlv(validity)?;
        let not_before = time(tag, before)?;
        let (tag, after, _) = tlv(rest)?;
        let not_after = time(tag, after)?;
        Some(Validity {
            not_before,
            not_after,
        })
    }

    /// Whether `now` falls within the period.
    pub fn contains(&self, now: SystemTime) -> bool {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        self.not_before <= now && now <= self.not_after
    }

    /// `notBefore` as `YYYY-MM-DD HH:MM:SS` (UTC).
    pub fn not_before_utc(&self) -> String {
        format_utc(self.not_before)
    }

    /// `notAfter` as `YYYY-MM-DD HH:MM:SS` (UTC).
    pub fn not_after_utc(&self) -> String {
        format_utc(self.not_after)
    }
}

/// One DER element: (tag, contents, what follows). Lengths of up to 4 bytes.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (body, after) = rest.split_at(len);
    Some((tag, body, after))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950..2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), the
/// only forms RFC 5280 allows, to seconds since the epoch.
fn time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match (tag, text.len()) {
        (0x17, 13) => {
            let yy = digits(text.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        (0x18, 15) => (digits(text.get(..4)?)?, text.get(4..)?),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(rest.get(i..i + 2)?);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn format_utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_time_forms_convert_to_epoch_seconds() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20000229120000Z"), Some(951_825_600));
        assert_eq!(time(0x18, b"2000022912000Z"), None);
        assert_eq!(time(0x17, b"701301000000Z"), None);
        assert_eq!(format_utc(951_825_600), "2000-02-29 12:00:00");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn a_generated_certificate_reads_back_its_dates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 5, 17);
        params.not_after = rcgen::date_time_ymd(2060, 5, 17);
        let cert = params.self_signed(&key).unwrap();
        let v = Validity::of(cert.der()).unwrap();
        assert_eq!(v.not_before_utc(), "2020-05-17 00:00:00");
        assert_eq!(v.not_after_utc(), "2060-05-17 00:00:00");
        assert!(v.contains(SystemTime::now()));
    }

    #[test]
    fn truncated_der_is_not_a_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().as_ref();
        for cut in [0, 1, 5, 40] {
            assert_eq!(Validity::of(&CertificateDer::from(&der[..cut])), None);
        }
    }
}
