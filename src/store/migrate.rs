//! Embedded, numbered SQL migrations, applied in order, each in its own
//! transaction together with its row in `schema_migrations`. On
//! PostgreSQL an advisory lock keeps replicas that start together from
//! migrating twice.

use sqlx::Executor;

use super::{now_ms, Backend, Store, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "keys",
        sql: include_str!("../../migrations/0001_keys.sql"),
    },
    Migration {
        version: 2,
        name: "leaks",
        sql: include_str!("../../migrations/0002_leaks.sql"),
    },
    Migration {
        version: 3,
        name: "sources",
        sql: include_str!("../../migrations/0003_sources.sql"),
    },
    Migration {
        version: 4,
        name: "console",
        sql: include_str!("../../migrations/0004_console.sql"),
    },
    Migration {
        version: 5,
        name: "replicas",
        sql: include_str!("../../migrations/0005_replicas.sql"),
    },
    Migration {
        version: 6,
        name: "pepper",
        sql: include_str!("../../migrations/0006_pepper.sql"),
    },
    Migration {
        version: 7,
        name: "people",
        sql: include_str!("../../migrations/0007_people.sql"),
    },
    Migration {
        version: 8,
        name: "limits",
        sql: include_str!("../../migrations/0008_limits.sql"),
    },
    Migration {
        version: 9,
        name: "third_party",
        sql: include_str!("../../migrations/0009_third_party.sql"),
    },
];

/// Any constant works; it only has to be the same in every replica.
const MIGRATION_LOCK: i64 = 0x006b_6579_7761_7264;

pub(super) async fn run(store: &Store) -> Result<(), StoreError> {
    let mut conn = store.pool.acquire().await?;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply_pending(&mut conn).await;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply_pending(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let applied: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        .fetch_one(&mut *conn)
        .await?;
    for m in MIGRATIONS.iter().filter(|m| m.version > applied) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|source| StoreError::Migration {
                version: m.version,
                source,
            })?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
