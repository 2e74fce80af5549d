//! The catalogue and purchases.

use super::RepoError;
use crate::db::Db;
use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub price: Decimal,
    /// Items left, for products sold from a stock.
    pub stock: Option<i64>,
}

pub async fn list_products(db: &impl Db) -> Result<Vec<Product>, RepoError> {
    let rows = db
        .query(
            "SELECT p.id, p.title, p.description, p.price,
                    CASE WHEN p.has_stock THEN
                        (SELECT count(*) FROM stock_items s WHERE s.product_id = p.id AND s.order_id IS NULL)
                    END
             FROM products p WHERE p.active ORDER BY p.id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Product {
            id: r.get(0),
            title: r.get(1),
            description: r.get(2),
            price: r.get(3),
            stock: r.get(4),
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    Bought {
        title: String,
        price: Decimal,
        balance: Decimal,
        /// The stock item sold, or the product's delivery text.
        delivery: String,
    },
    NotEnoughBalance {
        title: String,
        price: Decimal,
        balance: Decimal,
    },
    OutOfStock {
        title: String,
    },
    NoSuchProduct,
}

/// Buys one product in the caller's transaction, which must be committed only for
/// `Bought` (anything else may have debited before finding out, and is rolled back).
/// `request_key` names the request: the same key buys once, and a repeat returns the first
/// purchase again.
#[tracing::instrument(skip_all, fields(user_id, product_id))]
pub async fn buy(
    db: &impl Db,
    request_key: &str,
    user_id: i64,
    product_id: i64,
) -> Result<Purchase, RepoError> {
    if let Some(done) = previous_purchase(db, request_key, user_id).await? {
        return Ok(done);
    }
    let Some(product) = db
        .query_opt(
            "SELECT title, price, has_stock, delivery FROM products WHERE id = $1 AND active",
            &[&product_id],
        )
        .await?
    else {
        return Ok(Purchase::NoSuchProduct);
    };
    let (title, price, has_stock, delivery): (String, Decimal, bool, String) = (
        product.get(0),
        product.get(1),
        product.get(2),
        product.get(3),
    );
    // The WHERE clause is the guard: under concurrent purchases each UPDATE re-reads the
    // balance after the row lock, so the balance can never go below zero.
    let debited = db
        .query_opt(
            "UPDATE balances SET balance = balance - $2, updated_at = now()
             WHERE user_id = $1 AND balance >= $2 RETURNING balance",
            &[&user_id, &price],
        )
        .await?;
    let Some(debited) = debited else {
        let balance = super::users::balance(db, user_id).await?;
        return Ok(Purchase::NotEnoughBalance {
            title,
            price,
            balance,
        });
    };
    let balance: Decimal = debited.get(0);
    let item = if has_stock {
        let row = db
            .query_opt(
                "SELECT id, payload FROM stock_items WHERE product_id = $1 AND order_id IS NULL
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&product_id],
            )
            .await?;
        let Some(row) = row else {
            return Ok(Purchase::OutOfStock { title });
        };
        Some((row.get::<_, i64>(0), row.get::<_, String>(1)))
    } else {
        None
    };
    let order_id: i64 = db
        .query_one(
            "INSERT INTO orders (request_key, user_id, product_id, price) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[&request_key, &user_id, &product_id, &price],
        )
        .await?
        .get(0);
    if let Some((item_id, _)) = &item {
        db.execute(
            "UPDATE stock_items SET order_id = $2 WHERE id = $1",
            &[item_id, &order_id],
        )
        .await?;
    }
    let negative = -price;
    let reference = format!("order:{order_id}");
    db.execute(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, reference, description)
         VALUES ($1, 'purchase', $2, $3, $4, $5)",
        &[&user_id, &negative, &balance, &reference, &title],
    )
    .await?;
    Ok(Purchase::Bought {
        title,
        price,
        balance,
        delivery: item.map(|(_, payload)| payload).unwrap_or(delivery),
    })
}

async fn previous_purchase(
    db: &impl Db,
    request_key: &str,
    user_id: i64,
) -> Result<Option<Purchase>, RepoError> {
    let row = db
        .query_opt(
            "SELECT p.title, o.price, COALESCE(s.payload, p.delivery)
             FROM orders o JOIN products p ON p.id = o.product_id
             LEFT JOIN stock_items s ON s.order_id = o.id
             WHERE o.request_key = $1 AND o.user_id = $2",
            &[&request_key, &user_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Purchase::Bought {
        title: row.get(0),
        price: row.get(1),
        balance: super::users::balance(db, user_id).await?,
        delivery: row.get(2),
    }))
}
