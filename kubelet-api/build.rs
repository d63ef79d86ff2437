//! Generates the device plugin API's Rust types, kubelet's Registration client and the
//! DevicePlugin server trait from `proto/deviceplugin_v1beta1.proto`, parsed by protox (pure Rust).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/deviceplugin_v1beta1.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
