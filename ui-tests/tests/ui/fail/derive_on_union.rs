use activity_core::ActivityError;

#[derive(ActivityError)]
union Bits {
    a: u32,
    b: f32,
}

#[derive(Debug, ActivityError)]
enum Typo {
    #[activity_error(non_retriable)]
    A,
}

fn main() {}
