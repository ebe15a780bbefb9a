//! The field list of a sync: checked against the org's Account describe before anything is
//! written, named as the org names them, and typed so a Bulk CSV cell becomes the JSON value
//! the REST API would have sent.

use std::collections::HashMap;

use sfkeep::client::Client;

/// The fields every sync reads, whatever the user asks: the record's key and its version.
pub const ALWAYS: &[&str] = &["Id", "SystemModstamp"];

/// How a CSV cell becomes a JSON value, by the field's describe type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// `double`, `currency`, `percent`, `int`, `long`: a JSON number.
    Number,
    /// `boolean`: `true` / `false`.
    Boolean,
    /// Everything else (strings, ids, picklists, dates): a JSON string.
    Text,
}

/// A field list the org has: `Id`, `SystemModstamp`, then the asked fields in the order asked,
/// each once, spelled as the describe spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldList {
    names: Vec<String>,
    kinds: HashMap<String, FieldKind>,
}

/// A field the org's Account does not have.
#[derive(Debug, thiserror::Error)]
#[error(
    "Account has no field `{field}` in this org; nothing was written. Fields it has: {available}"
)]
pub struct UnknownField {
    /// The field as asked.
    pub field: String,
    /// The org's Account fields, comma separated.
    pub available: String,
}

impl FieldList {
    /// Reads the Account describe and resolves `asked` against it.
    pub async fn resolve(client: &Client, asked: &[String]) -> Result<FieldList, super::SyncError> {
        let describe = client
            .get_json(&client.data_path("/sobjects/Account/describe"))
            .await?;
        let described: Vec<(String, &str)> = describe["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| Some((f["name"].as_str()?.to_owned(), f["type"].as_str()?)))
            .collect();
        Ok(Self::from_describe(&described, asked)?)
    }

    /// Resolves `asked` against `(name, type)` pairs of a describe.
    pub fn from_describe(
        described: &[(String, &str)],
        asked: &[String],
    ) -> Result<FieldList, UnknownField> {
        let mut names: Vec<String> = Vec::new();
        let mut kinds = HashMap::new();
        let wanted = ALWAYS
            .iter()
            .map(|s| (*s).to_owned())
            .chain(asked.iter().map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty());
        for field in wanted {
            let Some((name, ty)) = described
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&field))
            else {
                return Err(UnknownField {
                    field,
                    available: described
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if names.contains(name) {
                continue;
            }
            let kind = match *ty {
                "double" | "currency" | "percent" | "int" | "long" => FieldKind::Number,
                "boolean" => FieldKind::Boolean,
                _ => FieldKind::Text,
            };
            kinds.insert(name.clone(), kind);
            names.push(name.clone());
        }
        Ok(FieldList { names, kinds })
    }

    /// The names, `Id` and `SystemModstamp` first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How a field's CSV text becomes JSON (text for a field not in the list).
    pub fn kind(&self, field: &str) -> FieldKind {
        self.kinds.get(field).copied().unwrap_or(FieldKind::Text)
    }

    /// Whether the user asked for `IsDeleted` itself (then it is stored like any field).
    pub fn keeps_is_deleted(&self) -> bool {
        self.names.iter().any(|n| n == "IsDeleted")
    }

    /// Whether `stored` (the list a database was synced with) holds the same fields.
    pub fn same_as(&self, stored: &[String]) -> bool {
        let mut a: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let mut b: Vec<&str> = stored.iter().map(String::as_str).collect();
        a.sort_unstable();
        b.sort_unstable();
        a == b
    }

    /// The fields of this list that `stored` lacks.
    pub fn added_to(&self, stored: &[String]) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| !stored.contains(n))
            .cloned()
            .collect()
    }

    /// `SELECT <fields>[, IsDeleted] FROM Account`.
    pub fn select(&self, with_is_deleted: bool) -> String {
        let mut list = self.names.join(", ");
        if with_is_deleted && !self.keeps_is_deleted() {
            list.push_str(", IsDeleted");
        }
        format!("SELECT {list} FROM Account")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described() -> Vec<(String, &'static str)> {
        [
            ("Id", "id"),
            ("Name", "string"),
            ("AnnualRevenue", "currency"),
            ("IsDeleted", "boolean"),
            ("SystemModstamp", "datetime"),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect()
    }

    #[test]
    fn asked_fields_are_spelled_as_the_org_spells_them_once_each() {
        let asked = vec![
            "name".to_owned(),
            " NAME ".to_owned(),
            "annualrevenue".into(),
        ];
        let f = FieldList::from_describe(&described(), &asked).unwrap();
        assert_eq!(
            f.names(),
            ["Id", "SystemModstamp", "Name", "AnnualRevenue"].map(String::from)
        );
        assert_eq!(f.kind("AnnualRevenue"), FieldKind::Number);
        assert_eq!(f.kind("Name"), FieldKind::Text);
        assert_eq!(
            f.select(true),
            "SELECT Id, SystemModstamp, Name, AnnualRevenue, IsDeleted FROM Account"
        );
        assert!(f.same_as(&["Name", "Id", "AnnualRevenue", "SystemModstamp"].map(String::from)));
        assert_eq!(
            f.added_to(&["Id", "SystemModstamp", "Name"].map(String::from)),
            ["AnnualRevenue"]
        );
    }

    #[test]
    fn a_field_the_org_does_not_have_is_named() {
        let e =
            FieldList::from_describe(&described(), &["Name".into(), "Nope__c".into()]).unwrap_err();
        assert_eq!(e.field, "Nope__c");
        assert!(e.to_string().contains("Fields it has: Id, Name"), "{e}");
    }
}
