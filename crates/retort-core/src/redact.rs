//! Credentials out of URLs before a URL reaches a message, a log, a file or the run store.
//!
//! A key may ride in a base URL (`https://user:KEY@host/v1`, `...?api-key=KEY`): the URL is
//! used as given for requests, and shown only through [`redact_url`].

/// The URL with its password (and user name) and every query value replaced by `[redacted]`.
/// Text that is not a URL comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("[redacted]@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let tail = match tail.find('?') {
        None => tail.to_string(),
        Some(question) => {
            let (path, query) = tail.split_at(question + 1);
            let (query, fragment) = match query.find('#') {
                Some(hash) => query.split_at(hash),
                None => (query, ""),
            };
            let redacted: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) => format!("{name}=[redacted]"),
                    None => pair.to_string(),
                })
                .collect();
            format!("{path}{}{fragment}", redacted.join("&"))
        }
    };
    format!("{scheme}{authority}{tail}")
}

/// The secret parts of a URL (its password, user name and query values), to scrub from any
/// text an error carries.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let Some(scheme_end) = url.find("://") else { return secrets };
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if let Some(at) = authority.rfind('@') {
        let userinfo = &authority[..at];
        secrets.extend(userinfo.split(':').filter(|part| !part.is_empty()).map(str::to_string));
    }
    if let Some(question) = rest.find('?') {
        let query = &rest[question + 1..];
        let query = &query[..query.find('#').unwrap_or(query.len())];
        secrets.extend(
            query.split('&').filter_map(|pair| pair.split_once('=')).map(|(_, value)| value.to_string()).filter(|value| value.len() >= 4),
        );
    }
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets
}

/// `text` with every secret part of `url` (and the URL itself) replaced.
pub fn scrub_url_secrets(text: &str, url: &str) -> String {
    let mut text = text.replace(url, &redact_url(url));
    for secret in url_secrets(url) {
        text = text.replace(&secret, "[redacted]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_query_values_are_redacted() {
        let cases = [
            ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
            ("https://user:sk-secret@api.example.com/v1", "https://[redacted]@api.example.com/v1"),
            ("https://host/openai?api-key=sk-secret&api-version=2024", "https://host/openai?api-key=[redacted]&api-version=[redacted]"),
            ("https://k@host/v1?token=abc#frag", "https://[redacted]@host/v1?token=[redacted]#frag"),
            ("not a url", "not a url"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
        let message = "POST https://user:sk-secret@api.example.com/v1/chat: sk-secret was refused";
        let scrubbed = scrub_url_secrets(message, "https://user:sk-secret@api.example.com/v1");
        assert!(!scrubbed.contains("sk-secret"), "{scrubbed}");
    }
}
