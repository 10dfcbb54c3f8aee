# Homebrew formula for berth. This file is a template: installers/build.sh writes dist/berth.rb with
# the @@...@@ placeholders filled from the darwin release archives (version, URLs, sha256).
class Berth < Formula
  desc "Docker-compatible containers in a small Linux VM"
  homepage "https://github.com/berth-dev/berth"
  version "@@VERSION@@"

  # The macOS driver drives Lima's limactl (Virtualization.framework).
  depends_on "lima"
  depends_on :macos

  on_macos do
    on_arm do
      url "@@URL_DARWIN_ARM64@@"
      sha256 "@@SHA256_DARWIN_ARM64@@"
    end
    on_intel do
      url "@@URL_DARWIN_AMD64@@"
      sha256 "@@SHA256_DARWIN_AMD64@@"
    end
  end

  def install
    bin.install "berth"
    # The static linux agent that runs inside the VM (not a macOS binary).
    libexec.install "berth-agent"
  end

  def caveats
    <<~EOS
      The linux agent for the VM is in:
        #{opt_libexec}/berth-agent
      berth keeps its instances under ~/.berth. Check the install with:
        berth version
    EOS
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/berth version --client")
  end
end
