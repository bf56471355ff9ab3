pub use zoo_energy as energy;
