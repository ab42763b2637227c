//! In-process verify of a hot key: parse, checksum, fingerprint, cache
//! hit, scope and entitlement checks, usage count. One thread.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyward::keys::fingerprint::Fingerprinter;
use keyward::keys::scopes::Catalog;
use keyward::keys::token::{Kind, Mode};
use keyward::service::{KeyService, NewKey};
use keyward::store::Store;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (service, token) = runtime.block_on(async {
        let store = Store::open(&format!("sqlite://{}", dir.path().join("bench.db").display()))
            .await
            .unwrap();
        let service = KeyService::new(store, Fingerprinter::new(&[9u8; 32]).unwrap(), Catalog::default(), "kw").unwrap();
        let (project, _, user) = service.bootstrap("bench@example.com", "bench").await.unwrap();
        let caller = keyward::service::Caller::system_for_user(&user);
        let new = NewKey {
            name: "hot".into(),
            description: String::new(),
            kind: Kind::Secret,
            mode: Mode::Live,
            scopes: vec!["analytics:read".into()],
            expires_at: None,
            owner_user_id: None,
            owner_service_account_id: None,
            limits: Default::default(),
        };
        let issued = service.create_key(&caller, &project.id, new).await.unwrap();
        (service, issued.secret.expose().to_string())
    });
    let verifier = service.verifier().clone();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("hot_key_x1000", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for _ in 0..1000 {
                    let verdict = verifier
                        .verify(
                            &token,
                            keyward::service::Ask {
                                scope: Some("analytics:read"),
                                mode: Some(Mode::Live),
                                ..Default::default()
                            },
                        )
                        .await
                        .unwrap();
                    assert!(verdict.valid());
                }
            })
        })
    });
    group.bench_function("malformed_x1000", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for _ in 0..1000 {
                    verifier.verify("kw_sk_live_typo", Default::default()).await.unwrap();
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
