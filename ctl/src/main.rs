fn main() {
    std::process::exit(vsctl::main());
}
