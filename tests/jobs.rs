//! The job queue on both backends: every job claimed once by concurrent
//! workers, failures retried until dead, and a dead worker's lease taken
//! over.

mod common;

use keyward::store::{now_ms, NewJob, Store};

async fn store(backend: common::Backend) -> Option<(Store, Option<tempfile::TempDir>)> {
    match backend {
        common::Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
            Some((Store::open(&url).await.unwrap(), Some(dir)))
        }
        common::Backend::Postgres => Some((Store::open(&common::postgres_database().await?).await.unwrap(), None)),
    }
}

fn job(i: usize, max_attempts: i64) -> NewJob {
    NewJob {
        id: format!("job_{i:05}"),
        kind: "test.work".into(),
        payload: format!("{{\"n\":{i}}}"),
        dedupe_key: Some(format!("work:{i}")),
        max_attempts,
        run_at: 0,
    }
}

macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (s, _dir) = store(common::Backend::Sqlite).await.unwrap();
                ($body)(s).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some((s, _dir)) = store(common::Backend::Postgres).await {
                    ($body)(s).await;
                }
            }
        }
    };
}

both!(concurrent_workers_claim_each_job_once, |s: Store| async move {
    for i in 0..300 {
        assert!(s.enqueue(&job(i, 3), now_ms()).await.unwrap());
    }
    assert!(!s.enqueue(&job(7, 3), now_ms()).await.unwrap(), "a dedupe key is queued once");
    let mut workers = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = s.claim_jobs(&format!("w{w}"), "test.", 7, 60_000, now_ms()).await.unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                for j in jobs {
                    assert!(s.complete_job(&j.id, &format!("w{w}"), now_ms()).await.unwrap());
                    mine.push(j.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (300, 300), "each of the 300 jobs processed exactly once");
    assert_eq!(s.queue_depth().await.unwrap().pending, 0);
});

both!(failing_job_retries_then_dies, |s: Store| async move {
    s.enqueue(&job(1, 2), now_ms()).await.unwrap();
    let first = s.claim_jobs("w", "test.", 10, 60_000, now_ms()).await.unwrap();
    assert_eq!(first[0].attempts, 1);
    s.fail_job(&first[0].id, "w", "receiver down", Some(now_ms()), now_ms())
        .await
        .unwrap();
    let second = s.claim_jobs("w", "test.", 10, 60_000, now_ms()).await.unwrap();
    assert_eq!(second[0].attempts, 2);
    s.fail_job(&second[0].id, "w", "receiver still down", None, now_ms()).await.unwrap();
    assert!(s.claim_jobs("w", "test.", 10, 60_000, now_ms()).await.unwrap().is_empty());
    assert_eq!(s.queue_depth().await.unwrap().dead, 1);
    assert_eq!(s.jobs_of_kind("test.work").await.unwrap()[0].1, "dead");
});

both!(expired_lease_is_taken_over, |s: Store| async move {
    s.enqueue(&job(1, 5), now_ms()).await.unwrap();
    let claimed = s.claim_jobs("dead-worker", "test.", 10, 200, now_ms()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        s.claim_jobs("other", "test.", 10, 200, now_ms()).await.unwrap().is_empty(),
        "held while the lease runs"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let taken = s.claim_jobs("other", "test.", 10, 200, now_ms()).await.unwrap();
    assert_eq!(taken.len(), 1, "taken over once the lease ran out");
    assert!(
        !s.complete_job(&claimed[0].id, "dead-worker", now_ms()).await.unwrap(),
        "the old holder lost its claim"
    );
    assert!(s.complete_job(&taken[0].id, "other", now_ms()).await.unwrap());
});

both!(a_clean_shutdown_hands_claimed_jobs_back_at_once, |s: Store| async move {
    for i in 0..5 {
        s.enqueue(&job(i, 3), now_ms()).await.unwrap();
    }
    let lease = 3_600_000;
    let claimed = s.claim_jobs("stopping", "test.", 3, lease, now_ms()).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(s.release_jobs("stopping", now_ms()).await.unwrap(), 3);
    assert_eq!(s.release_jobs("stopping", now_ms()).await.unwrap(), 0);
    // Without waiting for the hour-long lease, another worker gets all five,
    // and a released claim does not count as an attempt.
    let taken = s.claim_jobs("next", "test.", 10, lease, now_ms()).await.unwrap();
    assert_eq!(taken.len(), 5);
    assert!(taken.iter().all(|j| j.attempts == 1), "{taken:?}");
});
