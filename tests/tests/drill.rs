//! A small drill runs as a test: six organisations over the in-memory
//! transport, three alerts with known holders; every named invariant holds
//! and the counts match the ground truth.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_drill_passes_its_invariants_and_finds_every_holder() {
    let r = vigil_node::drill::run(6, 5, 3, 7).await.unwrap();
    for i in &r.invariants {
        assert!(i.passed, "invariant {:?} failed: {}", i.name, i.detail);
    }
    assert_eq!(r.invariants_failed, 0);
    assert_eq!((r.hits_expected, r.hits_found, r.false_hits), (3, 3, 0));
    assert_eq!(r.deliveries, 3 * 5, "each alert reached the five other members");
    assert_eq!(r.records, 6 * 5 + 3);
    assert!(r.delivery_max_ms >= r.delivery_p50_ms);
}
