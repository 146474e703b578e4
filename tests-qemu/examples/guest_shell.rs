//! Boots a cluster and runs commands read from stdin, for poking at guests by hand:
//!
//! ```text
//! cargo run -p tests-qemu --example guest_shell -- [nodes] [disk MiB,...]
//! 0: modprobe drbd && cat /proc/drbd      # runs on node0
//! 1: ip -4 addr                            # runs on node1
//! link 0 1 down                            # QMP set_link on both ends (up|down)
//! ```
//! Output goes to stdout; logs stay in `target/qemu-tests/guest_shell/`.

use std::io::BufRead;
use tests_qemu::{Cluster, ClusterSpec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nodes = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
    let disks: Vec<u64> = args
        .get(1)
        .map(|d| d.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![256]);
    let c = Cluster::start(ClusterSpec::new(nodes).disks(&disks).name("guest_shell"));
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("link ") {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let (a, b) = (w[0].parse().unwrap(), w[1].parse().unwrap());
            c.set_link(a, b, w[2] == "up");
            println!("link {a}-{b} {}", w[2]);
            continue;
        }
        let (node, cmd) = match line.split_once(':') {
            Some((n, cmd)) if n.trim().parse::<usize>().is_ok() => {
                (n.trim().parse().unwrap(), cmd.trim())
            }
            _ => (0, line),
        };
        let t = std::time::Instant::now();
        let o = c.node(node).run(cmd);
        println!(
            "node{node}$ {cmd}\n{}{}[{:?} in {:.2}s]",
            o.stdout,
            o.stderr,
            o.status,
            t.elapsed().as_secs_f64()
        );
    }
}
