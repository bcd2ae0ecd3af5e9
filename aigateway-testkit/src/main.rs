//! `aigateway-testkit serve`: runs the in-memory API server over HTTP until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use aigateway_testkit::ApiServer;
use clap::{Parser, Subcommand};

/// An in-memory Kubernetes API server for controller tests.
#[derive(Parser, Debug)]
#[command(name = "aigateway-testkit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API on 127.0.0.1 until Ctrl-C.
    Serve {
        /// Port to listen on (0 picks a free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Where to write the kubeconfig (default: a file in the temp directory).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// A directory of manifests (CRDs and other objects) to apply at start.
        #[arg(long)]
        crds: Option<PathBuf>,
        /// Answer every get and list this many milliseconds late, as a real API server
        /// would (for example 1); fractions allowed.
        #[arg(long, value_name = "MS", default_value = "0", value_parser = parse_millis)]
        read_latency_ms: Duration,
        /// Answer every create, update, patch and delete this many milliseconds late, as
        /// an etcd-backed API server would (for example 5). Watch events are not delayed.
        #[arg(long, value_name = "MS", default_value = "0", value_parser = parse_millis)]
        write_latency_ms: Duration,
    },
}

/// A delay in milliseconds: a finite, non-negative number such as `5` or `0.5`.
fn parse_millis(text: &str) -> Result<Duration, String> {
    let millis: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of milliseconds; use e.g. 5 or 0.5"))?;
    Duration::try_from_secs_f64(millis / 1000.0).map_err(|_| {
        format!("'{text}' is not a delay; use a non-negative number of milliseconds such as 5")
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), aigateway_testkit::Error> {
    let Command::Serve {
        port,
        kubeconfig,
        crds,
        read_latency_ms,
        write_latency_ms,
    } = cli.command;
    let server = ApiServer::builder()
        .request_latency(read_latency_ms, write_latency_ms)
        .build();
    if let Some(dir) = crds {
        let applied = server.apply_dir(&dir)?;
        println!("applied {} object(s) from {}", applied.len(), dir.display());
    }
    let http = server
        .serve_http(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    let path = kubeconfig.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "aigateway-testkit-{}.kubeconfig",
            http.addr().port()
        ))
    });
    http.write_kubeconfig(&path)?;
    println!("serving the Kubernetes API on {}", http.url());
    println!("kubeconfig: {}", path.display());
    if !(read_latency_ms.is_zero() && write_latency_ms.is_zero()) {
        println!(
            "latency model: reads {:.1} ms, writes {:.1} ms",
            read_latency_ms.as_secs_f64() * 1000.0,
            write_latency_ms.as_secs_f64() * 1000.0
        );
    }
    println!("request counters: {}/testkit/stats", http.url());
    println!("try: KUBECONFIG={} kubectl get namespaces", path.display());
    let _ = tokio::signal::ctrl_c().await;
    println!("shutting down");
    http.shutdown().await;
    Ok(())
}
