//! Incidents (one per leaked token), the places each was seen, and the
//! per-project alert settings the leak response reads.

use sqlx::any::AnyRow;

use super::{get, Store, StoreError, Tx};

const COLUMNS: &str = "id, key_id, project_id, fingerprint, display_prefix, last4, action, source_kind, repository, \
    commit_sha, path, line, url, first_seen, last_seen, seen_count, last_alerted_at";

/// Where a token was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Place {
    pub source_kind: String,
    pub repository: String,
    pub commit_sha: String,
    pub path: String,
    pub line: Option<i64>,
    pub url: String,
}

impl Place {
    /// The identity of the place: its URL, else repository@commit:path:line.
    pub fn key(&self) -> String {
        let key = if self.url.is_empty() {
            format!("{}@{}:{}:{}", self.repository, self.commit_sha, self.path, self.line.unwrap_or(0))
        } else {
            self.url.clone()
        };
        let key = format!("{}|{key}", self.source_kind);
        key.chars().take(2048).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Incident {
    pub id: String,
    pub key_id: Option<String>,
    pub project_id: Option<String>,
    pub fingerprint: String,
    pub display_prefix: String,
    pub last4: String,
    pub action: String,
    pub first_place: Place,
    pub first_seen: i64,
    pub last_seen: i64,
    pub seen_count: i64,
    pub last_alerted_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertSettings {
    pub webhook_url: String,
    pub webhook_secret: String,
    pub slack_webhook_url: String,
    pub email: bool,
}

/// The two tables of places a token was seen at, with the same columns:
/// keyward's own tokens' and other issuers'.
#[derive(Debug, Clone, Copy)]
pub(super) enum SightingTable {
    Own,
    ThirdParty,
}

impl SightingTable {
    fn name(self) -> &'static str {
        match self {
            SightingTable::Own => "sightings",
            SightingTable::ThirdParty => "third_party_sightings",
        }
    }
}

/// A project's or the deployment's alert channels, from their row.
pub(super) fn alert_settings_from_row(row: &AnyRow) -> Result<AlertSettings, StoreError> {
    Ok(AlertSettings {
        webhook_url: get(row, "webhook_url")?,
        webhook_secret: get(row, "webhook_secret")?,
        slack_webhook_url: get(row, "slack_webhook_url")?,
        email: get::<i64>(row, "email")? != 0,
    })
}

/// Incidents and sightings name a place with the same six columns.
pub(super) fn place_from_row(row: &AnyRow) -> Result<Place, StoreError> {
    Ok(Place {
        source_kind: get(row, "source_kind")?,
        repository: get(row, "repository")?,
        commit_sha: get(row, "commit_sha")?,
        path: get(row, "path")?,
        line: get(row, "line")?,
        url: get(row, "url")?,
    })
}

fn from_row(row: &AnyRow) -> Result<Incident, StoreError> {
    Ok(Incident {
        id: get(row, "id")?,
        key_id: get(row, "key_id")?,
        project_id: get(row, "project_id")?,
        fingerprint: get(row, "fingerprint")?,
        display_prefix: get(row, "display_prefix")?,
        last4: get(row, "last4")?,
        action: get(row, "action")?,
        first_place: place_from_row(row)?,
        first_seen: get(row, "first_seen")?,
        last_seen: get(row, "last_seen")?,
        seen_count: get(row, "seen_count")?,
        last_alerted_at: get(row, "last_alerted_at")?,
    })
}

impl Store {
    pub async fn incidents_of_project(&self, project_id: &str) -> Result<Vec<Incident>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM incidents WHERE project_id = $1 ORDER BY last_seen DESC, id");
        let rows = sqlx::query(&sql).bind(project_id).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Every incident of keyward's own tokens, newest sighting first.
    pub async fn all_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM incidents ORDER BY last_seen DESC, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Incidents of tokens that matched no stored key.
    pub async fn unknown_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM incidents WHERE key_id IS NULL ORDER BY last_seen DESC, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Every place an incident's token was seen, oldest first.
    pub async fn sightings(&self, incident_id: &str) -> Result<Vec<(Place, i64)>, StoreError> {
        self.places_seen(SightingTable::Own, incident_id).await
    }

    /// The places of `table` for one incident, each with its count.
    pub(super) async fn places_seen(&self, table: SightingTable, incident_id: &str) -> Result<Vec<(Place, i64)>, StoreError> {
        let sql = format!(
            "SELECT source_kind, repository, commit_sha, path, line, url, seen_count FROM {} \
             WHERE incident_id = $1 ORDER BY first_seen, place",
            table.name()
        );
        let rows = sqlx::query(&sql).bind(incident_id).fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((place_from_row(row)?, get(row, "seen_count")?))).collect()
    }

    pub async fn alert_settings(&self, project_id: &str) -> Result<AlertSettings, StoreError> {
        let row = sqlx::query("SELECT webhook_url, webhook_secret, slack_webhook_url, email FROM alert_settings WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => alert_settings_from_row(&row),
            None => Ok(AlertSettings {
                email: true,
                ..AlertSettings::default()
            }),
        }
    }

    /// Who hears about a leak by email: the key's owner and the project's
    /// owners and admins, without duplicates.
    pub async fn alert_recipients(&self, project_id: &str, owner_user_id: Option<&str>) -> Result<Vec<String>, StoreError> {
        let mut emails: Vec<String> = sqlx::query_scalar(
            "SELECT u.email FROM users u JOIN memberships m ON m.user_id = u.id \
             WHERE m.project_id = $1 AND (m.role IN ('owner', 'admin') OR u.id = $2) ORDER BY u.email",
        )
        .bind(project_id)
        .bind(owner_user_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        emails.dedup();
        Ok(emails)
    }
}

impl Tx<'_> {
    pub async fn incident_by_fingerprint(&mut self, fingerprint: &str) -> Result<Option<Incident>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM incidents WHERE fingerprint = $1");
        let row = sqlx::query(&sql).bind(fingerprint).fetch_optional(&mut *self.inner).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn insert_incident(&mut self, incident: &Incident) -> Result<(), StoreError> {
        let p = &incident.first_place;
        sqlx::query(
            "INSERT INTO incidents (id, key_id, project_id, fingerprint, display_prefix, last4, action, source_kind, \
             repository, commit_sha, path, line, url, first_seen, last_seen, seen_count, last_alerted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&incident.id)
        .bind(incident.key_id.as_deref())
        .bind(incident.project_id.as_deref())
        .bind(&incident.fingerprint)
        .bind(&incident.display_prefix)
        .bind(&incident.last4)
        .bind(&incident.action)
        .bind(&p.source_kind)
        .bind(&p.repository)
        .bind(&p.commit_sha)
        .bind(&p.path)
        .bind(p.line)
        .bind(&p.url)
        .bind(incident.first_seen)
        .bind(incident.last_seen)
        .bind(incident.seen_count)
        .bind(incident.last_alerted_at)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Another sighting of a known incident.
    pub async fn touch_incident(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE incidents SET last_seen = $1, seen_count = seen_count + 1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn mark_alerted(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE incidents SET last_alerted_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn record_sighting(&mut self, incident_id: &str, place: &Place, now: i64) -> Result<(), StoreError> {
        self.record_place(SightingTable::Own, incident_id, place, now).await
    }

    /// One more sighting at `place`: a new row, or the place's count and
    /// last time moved on.
    pub(super) async fn record_place(
        &mut self,
        table: SightingTable,
        incident_id: &str,
        place: &Place,
        now: i64,
    ) -> Result<(), StoreError> {
        let table = table.name();
        let sql = format!(
            "INSERT INTO {table} (incident_id, place, source_kind, repository, commit_sha, path, line, url, first_seen, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (incident_id, place) DO UPDATE SET last_seen = excluded.last_seen, seen_count = {table}.seen_count + 1"
        );
        sqlx::query(&sql)
            .bind(incident_id)
            .bind(place.key())
            .bind(&place.source_kind)
            .bind(&place.repository)
            .bind(&place.commit_sha)
            .bind(&place.path)
            .bind(place.line)
            .bind(&place.url)
            .bind(now)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn set_alert_settings(&mut self, project_id: &str, settings: &AlertSettings, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alert_settings (project_id, webhook_url, webhook_secret, slack_webhook_url, email, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (project_id) DO UPDATE SET webhook_url = excluded.webhook_url, \
             webhook_secret = excluded.webhook_secret, slack_webhook_url = excluded.slack_webhook_url, email = excluded.email, \
             updated_at = excluded.updated_at",
        )
        .bind(project_id)
        .bind(&settings.webhook_url)
        .bind(&settings.webhook_secret)
        .bind(&settings.slack_webhook_url)
        .bind(i64::from(settings.email))
        .bind(now)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn set_leak_policy(&mut self, project_id: &str, policy: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE projects SET leak_policy = $1 WHERE id = $2")
            .bind(policy)
            .bind(project_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }
}
