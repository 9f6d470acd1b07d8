fn main() -> anyhow::Result<()> {
    vswitch::daemon::main()
}
