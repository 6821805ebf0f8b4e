package io.whittle.cli;

public final class WhittleMain {
    public static void main(String[] args) {
        System.out.println("whittle");
    }
}
