//! The `Date` header (RFC 9110 §6.6.1): formatted once per second per thread, not once per
//! response.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use wss_proto::handshake::Response;

thread_local! {
    /// The second last formatted on this thread and its IMF-fixdate text.
    static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Now as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), reformatted only when the second
/// changed since this thread last asked. Each network thread keeps its own copy, so no lock is
/// taken and no thread waits for another.
pub(crate) fn http_date() -> String {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        cached.1.clone()
    })
}

/// `response` with a `Date` header, unless it has one (a 1xx needs none and gets none).
pub(crate) fn dated(mut response: Response) -> Response {
    if response.status >= 200
        && !response
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("date"))
    {
        response.headers.push(("Date".into(), http_date()));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_an_imf_fixdate_of_now() {
        let text = http_date();
        assert_eq!(text.len(), 29, "{text}");
        assert!(text.ends_with(" GMT"), "{text}");
        let parsed = httpdate::parse_http_date(&text).expect("parses back");
        let age = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(age.as_secs() <= 2, "{text} is not now");
    }

    #[test]
    fn dated_adds_one_date_and_keeps_an_existing_one() {
        let r = dated(Response::new(404));
        assert_eq!(r.headers.iter().filter(|(n, _)| n == "Date").count(), 1);
        let r = dated(dated(Response::new(200)));
        assert_eq!(r.headers.iter().filter(|(n, _)| n == "Date").count(), 1);
        assert!(dated(Response::new(101)).headers.is_empty());
    }
}
