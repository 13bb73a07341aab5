//! Test certificates: a throwaway CA and a server certificate for
//! `127.0.0.1` that it signed, made with the `openssl` command.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Write into `dir` a new CA (`ca.pem`, `ca.key`) and a certificate for
/// `127.0.0.1` signed by it (`cert.pem`, key `key.pem`), valid for one day.
/// Panics if `openssl` fails.
pub fn test_certificates(dir: &Path) {
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let steps: [Vec<&OsStr>; 3] = [
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=mss test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]
        .map(OsStr::new)
        .to_vec(),
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ]
        .map(OsStr::new)
        .to_vec(),
        [
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ]
        .map(OsStr::new)
        .to_vec(),
    ];
    for args in steps {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl made the certificates");
    }
}
