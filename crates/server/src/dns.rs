//! The DNS, through hickory-resolver.

use crate::resolver::{ResolveError, Resolver};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::Name;
use hickory_resolver::proto::rr::RData;
use protocol::HostName;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A resolver asking DNS servers, each lookup bounded by a timeout. It runs
/// its own single-thread runtime: `bpc-register` is synchronous and answers
/// one request.
pub struct DnsResolver {
    runtime: tokio::runtime::Runtime,
    resolver: TokioResolver,
    timeout: Duration,
}

impl DnsResolver {
    /// Asks `servers` (UDP, then TCP for long answers), or the servers of
    /// the system's resolv.conf when the list is empty. No cache is kept
    /// between requests and nothing is retried past `timeout`.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> Result<DnsResolver, ResolveError> {
        let setup = |reason: String| ResolveError::Setup { reason };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup(format!("cannot start the DNS runtime: {e}")))?;
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| setup(format!("cannot read the system's DNS configuration: {e}")))?
        } else {
            let name_servers = servers.iter().map(|server| name_server(*server)).collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            )
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 1;
        options.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let resolver = builder.build().map_err(|e| setup(format!("cannot set up the DNS resolver: {e}")))?;
        Ok(DnsResolver { runtime, resolver, timeout })
    }

    /// Runs one lookup; a timeout or a failure to get any answer is an
    /// error, "no such name" is an empty answer.
    fn lookup<T>(
        &self,
        what: String,
        future: impl Future<Output = Result<T, hickory_resolver::net::NetError>>,
    ) -> Result<Option<T>, ResolveError> {
        let answer = self.runtime.block_on(async { tokio::time::timeout(self.timeout, future).await });
        match answer {
            Err(_) => Err(ResolveError::Timeout { what, seconds: self.timeout.as_secs_f32() }),
            Ok(Ok(found)) => Ok(Some(found)),
            Ok(Err(error)) if error.is_no_records_found() || error.is_nx_domain() => Ok(None),
            Ok(Err(error)) => Err(ResolveError::Failed { what, reason: error.to_string() }),
        }
    }
}

fn name_server(server: SocketAddr) -> NameServerConfig {
    let mut config = NameServerConfig::udp_and_tcp(server.ip());
    for connection in &mut config.connections {
        connection.port = server.port();
    }
    config
}

impl Resolver for DnsResolver {
    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, ResolveError> {
        let found = self.lookup(format!("PTR of {ip}"), self.resolver.reverse_lookup(ip))?;
        let names = found.map(|lookup| {
            lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::PTR(ptr) => Some(ptr.0.to_string()),
                    _ => None,
                })
                .collect()
        });
        Ok(names.unwrap_or_default())
    }

    fn forward(&self, name: &HostName) -> Result<Vec<IpAddr>, ResolveError> {
        let fqdn = Name::from_ascii(format!("{name}."))
            .map_err(|e| ResolveError::Failed { what: format!("addresses of {name}"), reason: e.to_string() })?;
        let found = self.lookup(format!("addresses of {name}"), self.resolver.lookup_ip(fqdn))?;
        Ok(found.map(|lookup| lookup.iter().collect()).unwrap_or_default())
    }
}
