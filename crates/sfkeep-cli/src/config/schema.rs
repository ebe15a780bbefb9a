//! The config file's schema, as serde reads it: every table refuses unknown keys, and every
//! value is kept as written. What the values mean (URLs, versions, grants, paths, stores) is
//! checked afterwards by `config::validate`, which can say what is wrong in our own words.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// `[profiles.NAME]` tables.
    #[serde(default)]
    pub profiles: BTreeMap<String, RawProfile>,
    /// `[serve]`, read by `sfkeep serve` (`serve::settings`, which checks its keys).
    pub serve: Option<toml::Table>,
}

/// One `[profiles.NAME]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub login_url: Option<String>,
    pub instance_url: Option<String>,
    pub api_version: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<RawSecret>,
    pub username: Option<String>,
    pub refresh_token: Option<RawSecret>,
    pub jwt_key: Option<RawSecret>,
    pub password: Option<RawSecret>,
    pub security_token: Option<RawSecret>,
    pub grant: Option<String>,
    pub fallback_grant: Option<String>,
    pub session_timeout_secs: Option<i64>,
    pub store: Option<RawStore>,
    pub proxy_url: Option<String>,
    // What `sfkeep serve` reads (`serve::settings::ProfileGuardian` checks the values).
    pub refresh_token_idle_ttl: Option<toml::Value>,
    pub refresh_token_max_age: Option<toml::Value>,
    pub refresh_token_expires_at: Option<toml::Value>,
    pub keep_alive: Option<toml::Value>,
    pub jwt_cert: Option<toml::Value>,
    pub password_max_age: Option<toml::Value>,
    pub app_name: Option<toml::Value>,
    pub audit_retention_days: Option<i64>,
}

impl RawProfile {
    /// The keys `sfkeep serve` reads, as written.
    pub fn guardian_keys(&self) -> toml::Table {
        [
            ("refresh_token_idle_ttl", &self.refresh_token_idle_ttl),
            ("refresh_token_max_age", &self.refresh_token_max_age),
            ("refresh_token_expires_at", &self.refresh_token_expires_at),
            ("keep_alive", &self.keep_alive),
            ("jwt_cert", &self.jwt_cert),
            ("password_max_age", &self.password_max_age),
            ("app_name", &self.app_name),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v.clone()?)))
        .collect()
    }
}

/// `[profiles.NAME.store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub kind: Option<String>,
    pub path: Option<String>,
    pub key_file: Option<String>,
    pub url: Option<String>,
}

/// A secret reference: `{ env = "NAME" }` or `{ file = "PATH" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub env: Option<String>,
    pub file: Option<String>,
}

/// The profile keys whose values are secrets, and so must be references.
pub const SECRET_KEYS: &[&str] = &[
    "client_secret",
    "refresh_token",
    "jwt_key",
    "password",
    "security_token",
];

/// The keys of one table of the schema, in declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// The top level.
    File,
    /// `[profiles.NAME]`.
    Profile,
    /// `[profiles.NAME.store]`.
    Store,
    /// A secret reference.
    Secret,
}

impl Table {
    /// The keys serde accepts in this table, read from the derived schema itself so that a
    /// field added to a struct above is known to the error messages at once.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Table::File => fields_of::<RawFile>(),
            Table::Profile => fields_of::<RawProfile>(),
            Table::Store => fields_of::<RawStore>(),
            Table::Secret => fields_of::<RawSecret>(),
        }
    }
}

/// The field names serde's derive gives `deserialize_struct` for `T`.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut probe = FieldProbe { fields: &[] };
    let _ = T::deserialize(&mut probe);
    probe.fields
}

/// A deserializer that only records the field list a derived `Deserialize` announces, then
/// stops.
struct FieldProbe {
    fields: &'static [&'static str],
}

impl<'de> Deserializer<'de> for &mut FieldProbe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's fields are probed"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.fields = fields;
        Err(de::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_lists_come_from_the_structs() {
        assert_eq!(Table::File.keys(), ["profiles", "serve"]);
        assert_eq!(Table::Secret.keys(), ["env", "file"]);
        assert_eq!(Table::Store.keys(), ["kind", "path", "key_file", "url"]);
        let profile = Table::Profile.keys();
        assert!(profile.contains(&"session_timeout_secs") && profile.contains(&"store"));
        for k in SECRET_KEYS {
            assert!(profile.contains(k), "{k}");
        }
    }
}
