//! Revision of a pod template: a short, stable hash of its JSON form.
//!
//! serde_json sorts object keys, so the same template always gives the same revision, in this
//! process and the next. FNV-1a is enough: the hash names a template, it guards nothing.

use serde_json::Value;

pub fn template_revision(template: &Value) -> String {
    let text = template.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_template_same_revision_regardless_of_key_order() {
        let a: Value = serde_json::from_str(r#"{"spec":{"containers":[{"image":"a:1","name":"app"}]},"metadata":{"labels":{"app":"x"}}}"#).unwrap();
        let b = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "app", "image": "a:1"}]}});
        assert_eq!(template_revision(&a), template_revision(&b));
        assert_eq!(template_revision(&a).len(), 10);
    }

    #[test]
    fn image_change_changes_revision() {
        let a = json!({"spec": {"containers": [{"name": "app", "image": "a:1"}]}});
        let b = json!({"spec": {"containers": [{"name": "app", "image": "a:2"}]}});
        assert_ne!(template_revision(&a), template_revision(&b));
    }
}
