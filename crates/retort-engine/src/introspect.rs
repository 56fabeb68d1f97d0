//! Asks serde which fields a config struct has, so unknown keys can all be listed at once.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The field names `T` accepts, as its `Deserialize` implementation declares them.
pub(crate) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldGrabber { fields: &mut fields });
    fields
}

struct FieldGrabber<'a> {
    fields: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Grabbed;

impl std::fmt::Display for Grabbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names grabbed")
    }
}

impl std::error::Error for Grabbed {}

impl de::Error for Grabbed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Grabbed
    }
}

impl<'de> Deserializer<'de> for FieldGrabber<'_> {
    type Error = Grabbed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Grabbed> {
        Err(Grabbed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Grabbed> {
        *self.fields = fields;
        Err(Grabbed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The closest known name to a mistyped one, if any is close enough to suggest.
pub(crate) fn suggest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(unknown, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Example {
        prompt: String,
        #[serde(default)]
        into: String,
    }

    #[test]
    fn fields_are_grabbed() {
        assert_eq!(struct_fields::<Example>(), &["prompt", "into"]);
        assert_eq!(suggest("promt", ["prompt", "into"]), Some("prompt"));
        assert_eq!(suggest("zzz", ["prompt", "into"]), None);
    }
}
