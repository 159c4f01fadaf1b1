//! Masking of personal data for roles that may not see it in full.

/// `13812341234` → `138****1234`. Anything that is not an 11-digit number keeps only its last 4.
pub fn phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() == 11 {
        format!("{}****{}", chars[..3].iter().collect::<String>(), chars[7..].iter().collect::<String>())
    } else if chars.len() > 4 {
        format!("****{}", chars[chars.len() - 4..].iter().collect::<String>())
    } else {
        "****".to_string()
    }
}

/// `张三丰` → `张**`: the surname stays, as Chinese service desks print it.
pub fn name(n: &str) -> String {
    let mut chars = n.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// `110101199003074514` → `110101********4514`.
pub fn id_number(n: &str) -> String {
    if n.len() == 18 { format!("{}********{}", &n[..6], &n[14..]) } else { "******".to_string() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks() {
        assert_eq!(super::phone("13812341234"), "138****1234");
        assert_eq!(super::phone("12345"), "****2345");
        assert_eq!(super::name("张三丰"), "张**");
        assert_eq!(super::id_number("110101199003074514"), "110101********4514");
    }
}
