use crate::helpers::*;
use rust_decimal::Decimal;
use shared::secret::SecretString;
use std::collections::HashSet;
use std::str::FromStr;
use workers::repo::shop::{buy, Purchase};

async fn seed(db: &tokio_postgres::Client, user: i64, balance: &str, items: usize) -> i64 {
    db.execute("INSERT INTO users (id) VALUES ($1)", &[&user])
        .await
        .unwrap();
    let balance = Decimal::from_str(balance).unwrap();
    db.execute(
        "INSERT INTO balances (user_id, balance) VALUES ($1, $2)",
        &[&user, &balance],
    )
    .await
    .unwrap();
    let product: i64 = db
        .query_one(
            "INSERT INTO products (title, price, has_stock) VALUES ('Key', 1.00, true) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for i in 0..items {
        db.execute(
            "INSERT INTO stock_items (product_id, payload) VALUES ($1, $2)",
            &[&product, &format!("KEY-{i:03}")],
        )
        .await
        .unwrap();
    }
    product
}

/// 50 purchases at once on a balance that covers 10: exactly 10 succeed, the balance never
/// goes below zero, and no stock item is sold twice.
#[tokio::test]
async fn concurrent_purchases_never_overdraw_or_double_sell() {
    let db = testkit::TestDatabase::create().await.unwrap();
    workers::db::migrate(&SecretString::new(db.url()))
        .await
        .unwrap();
    let client = db.client().await.unwrap();
    let product = seed(&client, 7001, "10.00", 40).await;
    let pool = workers::db::pool(&SecretString::new(db.url()), 50).unwrap();
    let attempts = (0..50).map(|i| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            let outcome = buy(&tx, &format!("req{i}"), 7001, product).await.unwrap();
            if matches!(outcome, Purchase::Bought { .. }) {
                tx.commit().await.unwrap();
            }
            outcome
        })
    });
    let mut delivered = Vec::new();
    let mut refused = 0;
    for a in attempts {
        match a.await.unwrap() {
            Purchase::Bought { delivery, .. } => delivered.push(delivery),
            Purchase::NotEnoughBalance { .. } => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered.len(), 10);
    assert_eq!(refused, 40);
    assert_eq!(
        delivered.iter().collect::<HashSet<_>>().len(),
        10,
        "an item sold twice"
    );
    let balance: Decimal = client
        .query_one("SELECT balance FROM balances WHERE user_id = 7001", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(balance, Decimal::ZERO);
    let sold: i64 = client
        .query_one(
            "SELECT count(*) FROM stock_items WHERE order_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sold, 10);
    let ledger: Decimal = client
        .query_one("SELECT sum(amount) FROM ledger WHERE user_id = 7001", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger, Decimal::from_str("-10.00").unwrap());
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_repeated_purchase_request_charges_once_and_sold_out_charges_nothing() {
    let db = testkit::TestDatabase::create().await.unwrap();
    workers::db::migrate(&SecretString::new(db.url()))
        .await
        .unwrap();
    let client = db.client().await.unwrap();
    let product = seed(&client, 7002, "5.00", 1).await;
    let pool = workers::db::pool(&SecretString::new(db.url()), 4).unwrap();
    let mut conn = pool.get().await.unwrap();
    for _ in 0..2 {
        let tx = conn.transaction().await.unwrap();
        let outcome = buy(&tx, "same-request", 7002, product).await.unwrap();
        assert!(matches!(outcome, Purchase::Bought { ref delivery, .. } if delivery == "KEY-000"));
        tx.commit().await.unwrap();
    }
    let tx = conn.transaction().await.unwrap();
    let outcome = buy(&tx, "another", 7002, product).await.unwrap();
    assert!(
        matches!(outcome, Purchase::OutOfStock { .. }),
        "{outcome:?}"
    );
    tx.rollback().await.unwrap();
    let balance: Decimal = client
        .query_one("SELECT balance FROM balances WHERE user_id = 7002", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(balance, Decimal::from_str("4.00").unwrap());
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn the_shop_in_the_chat() {
    let sys = TestSystem::start().await;
    let db = sys.db.client().await.unwrap();
    let product = seed(&db, 7003, "3.00", 2).await;
    let ana = user(7003);
    sys.say(1, &ana, "/shop").await;
    let sent = sys.wait_for_sends(7003, 1).await;
    assert!(
        text_of(&sent[0]).contains("Key — 1.00 USD — 2 left"),
        "{}",
        text_of(&sent[0])
    );
    sys.say(2, &ana, &format!("/buy {product}")).await;
    let sent = sys.wait_for_sends(7003, 2).await;
    assert!(
        text_of(&sent[1]).starts_with("You bought Key for 1.00 USD. Balance: 2.00 USD\nKEY-000"),
        "{}",
        text_of(&sent[1])
    );
    sys.say(3, &ana, "/buy 999").await;
    sys.say(4, &ana, "/history").await;
    let sent = sys.wait_for_sends(7003, 4).await;
    assert_eq!(text_of(&sent[2]), "No such product. See /shop.");
    assert!(
        text_of(&sent[3]).contains("−1.00 USD Key"),
        "{}",
        text_of(&sent[3])
    );
    sys.finish().await;
}
