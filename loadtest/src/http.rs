//! Posting webhooks to the ingress over a fixed pool of HTTP/1.1 keep-alive connections.
//!
//! Callers never wait for a free connection of their own: they put a request on one shared
//! queue and the next idle connection takes it, so an open-loop generator can have many
//! requests in flight while the number of sockets stays bounded. A connection that fails is
//! reopened for the next request; the failed request is reported as a transport error and the
//! caller decides whether to retry (as Telegram does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};

/// The header Telegram puts the webhook secret in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// `http://host:port[/prefix]` split for the client.
#[derive(Debug, Clone)]
pub struct Target {
    pub authority: String,
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("{url:?} must be an http:// URL");
        }
        let authority = uri.authority().context("the URL has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Target {
            authority: format!("{}:{port}", authority.host()),
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// One request: path under the target, an optional header, the JSON body.
pub struct Post {
    pub path: &'static str,
    pub header: Option<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// What came back: the status, or why there was none.
pub type Answer = Result<u16, String>;

struct Job {
    post: Post,
    answer: oneshot::Sender<(Answer, Duration)>,
}

/// Handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct Poster {
    queue: mpsc::UnboundedSender<Job>,
}

impl Poster {
    /// Starts `connections` connection tasks; they end when every handle is dropped.
    pub fn start(target: Target, connections: usize) -> Poster {
        let (queue, jobs) = mpsc::unbounded_channel();
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..connections.max(1) {
            tokio::spawn(connection(target.clone(), Arc::clone(&jobs)));
        }
        Poster { queue }
    }

    /// Sends one request; returns the answer and how long the request took once a connection
    /// had taken it (queueing before that is not included).
    pub async fn post(&self, post: Post) -> (Answer, Duration) {
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Job { post, answer }).is_err() {
            return (Err("the connection pool is gone".into()), Duration::ZERO);
        }
        answered
            .await
            .unwrap_or_else(|_| (Err("the connection task ended".into()), Duration::ZERO))
    }
}

async fn connection(target: Target, jobs: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>) {
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        // The lock is held only while waiting for the next job: one idle connection waits on
        // the queue, the others wait for the lock, and each job goes to exactly one of them.
        let job = { jobs.lock().await.recv().await };
        let Some(job) = job else { return };
        let started = Instant::now();
        let answer = match send(&mut conn, &target, job.post).await {
            Ok(status) => Ok(status),
            Err(e) => {
                conn = None;
                Err(format!("{e:#}"))
            }
        };
        // The caller may have stopped waiting; nothing to do then.
        let _ = job.answer.send((answer, started.elapsed()));
    }
}

/// A keep-alive HTTP/1.1 connection to `authority`, its driver spawned.
pub async fn open(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connect {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    target: &Target,
    post: Post,
) -> anyhow::Result<u16> {
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        *conn = Some(open(&target.authority).await?);
    }
    let Some(sender) = conn.as_mut() else {
        unreachable!("connected above")
    };
    sender.ready().await?;
    let mut request = Request::post(format!("{}{}", target.prefix, post.path))
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, "application/json");
    if let Some((name, value)) = post.header {
        request = request.header(name, value);
    }
    let response = sender
        .send_request(request.body(Full::new(post.body))?)
        .await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_keeps_a_path_prefix() {
        let t = Target::parse("http://127.0.0.1:8080/base/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.prefix.as_str()),
            ("127.0.0.1:8080", "/base")
        );
        assert_eq!(
            Target::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert!(Target::parse("https://x").is_err());
    }
}
