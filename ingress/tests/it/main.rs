//! Ingress against a real `redis-server`; every test gets its own server and namespace.

mod heleket;
mod helpers;
mod mtproto;
mod outage;
mod routes;
mod shutdown;
mod webhook;
