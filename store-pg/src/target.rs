//! The database a store talks to, as shown in errors and logs: the URL without its password.

/// `url` with any password replaced by `***`: the userinfo of a `postgres://user:pw@host`
/// URL, and a `password=` pair of a key/value connection string.
pub fn redact(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let mut out = url[..scheme_end + 3].to_string();
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        out.push_str(&redact_query(&rest[authority_end..]));
        out
    } else {
        url.split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => "password=***".into(),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A URL's path and query with a `password=` parameter's value hidden.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://app:s3cr%40t@db.example:5432/coldaisle"),
            "postgres://app:***@db.example:5432/coldaisle"
        );
        assert_eq!(
            redact("postgresql://app@127.0.0.1:5433/c?sslmode=disable&password=s3cr"),
            "postgresql://app@127.0.0.1:5433/c?sslmode=disable&password=***"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact("host=db user=app password=s3cr dbname=c"),
            "host=db user=app password=*** dbname=c"
        );
        for url in [
            "postgres://app:s3cr@h/db",
            "host=h password=s3cr",
            "postgres://h/db?password=s3cr",
        ] {
            assert!(!redact(url).contains("s3cr"), "{url}");
        }
    }
}
