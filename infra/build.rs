// `sqlx::migrate!` embeds the files of /migrations when this crate compiles; rebuild it whenever
// a file there is added or changed, so a new migration needs no code change.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
